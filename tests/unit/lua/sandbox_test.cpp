#include "tests/unit/lua/lua_test_util.hpp"

namespace siphon::testing {
namespace {

// The first line of a failed load: "script.lua:LINE: message".
std::string FirstLine(const Status& s) {
  return s.message().substr(0, s.message().find('\n'));
}

std::string Declared(const std::string& body) {
  return std::string(kHeader) + "siphon.replicate 't' { source = pg }\n" + body;
}

TEST_F(LuaTest, RemovedFunctionsRaiseAtTheCallingLine) {
  const std::pair<const char*, const char*> cases[] = {
      {"os.execute('true')", "os.execute"},
      {"os.exit(0)", "os.exit"},
      {"os.remove('x')", "os.remove"},
      {"os.rename('a', 'b')", "os.rename"},
      {"os.tmpname()", "os.tmpname"},
      {"io.popen('ls')", "io.popen"},
      {"io.write('x')", "io.write"},
      {"io.read()", "io.read"},
      {"io.stdout:write('x')", "io.stdout"},
      {"dofile('x.lua')", "dofile"},
      {"loadfile('x.lua')", "loadfile"},
      {"package.loadlib('libc.so.6', 'puts')", "package.loadlib"},
      {"debug.sethook()", "debug.sethook"},
      {"debug.getregistry()", "debug.getregistry"},
      // require finds package.loaded first: it must hold the same restricted tables.
      {"require('os').execute('true')", "os.execute"},
      {"require('io').popen('ls')", "io.popen"},
      {"package.loaded.io.popen('ls')", "io.popen"},
      {"require('debug').sethook()", "debug.sethook"},
  };
  for (const auto& [code, name] : cases) {
    auto host = NewHost();
    Status s = Load(*host, Declared(std::string("\n") + code + "\n"));
    ASSERT_FALSE(s.ok()) << code;
    EXPECT_EQ(FirstLine(s), ScriptPath() + ":5: " + name +
                                " is not available in the siphon sandbox (run with --unsafe-lua "
                                "to allow it)")
        << code;
  }
}

// A refusal in the script's main chunk says so once, at its line: a traceback naming the same
// function and line again is left out. One called through a function keeps its traceback,
// which names the way there.
TEST_F(LuaTest, ARefusalWhileLoadingSaysItOnce) {
  for (const char* code : {"os.execute('true')", "io.open('/etc/passwd')", "require('socket')"}) {
    auto host = NewHost();
    Status s = Load(*host, Declared(std::string("\n") + code + "\n"));
    ASSERT_FALSE(s.ok()) << code;
    EXPECT_EQ(s.message().find("stack traceback"), std::string::npos) << s.message();
    EXPECT_EQ(s.message().rfind(ScriptPath() + ":5: ", 0), 0u) << s.message();
  }
  auto host = NewHost();
  Status s = Load(*host, Declared("local function cleanup()\n"
                                  "  os.remove('old.db')\n"
                                  "end\n"
                                  "cleanup()\n"));
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.message(), ScriptPath() +
                             ":5: os.remove is not available in the siphon sandbox (run with "
                             "--unsafe-lua to allow it)\n"
                             "stack traceback:\n"
                             "\t[C]: in function 'os.remove'\n\t" +
                             ScriptPath() + ":5: in local 'cleanup'\n\t" + ScriptPath() +
                             ":7: in main chunk")
      << s.message();
}

// A file handle's metatable already has a __gc: replacing it would run a finalizer outside
// the instruction budget, so getmetatable refuses userdata.
TEST_F(LuaTest, UserdataMetatablesAreHidden) {
  Write("data.txt", "x\n");
  auto host = NewHost();
  Status s = Load(*host, Declared("local f = assert(io.open('data.txt'))\n"
                                  "getmetatable(f).__gc = function() while true do end end\n"));
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(FirstLine(s), ScriptPath() +
                              ":5: getmetatable of a userdata is not available in the siphon "
                              "sandbox (run with --unsafe-lua to allow it)");
}

TEST_F(LuaTest, DeclaringFromACallbackIsRefused) {
  auto host = NewHost();
  Status s = Load(*host, Declared("function later() siphon.replicate 'x' { source = pg } end\n"));
  ASSERT_TRUE(s.ok()) << s.message();
  s = Exec(*host, "later()", "handler synced");
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(FirstLine(s), ScriptPath() +
                              ":4: siphon.replicate declares the deployment: call it "
                              "from the script itself, not from a callback");
}

TEST_F(LuaTest, UnsafeModeAllowsTheFullLibrary) {
  LuaOptions options;
  options.unsafe = true;
  Write("helpers.lua", "return { answer = 42 }\n");
  auto host = NewHost(options);
  Status s = Load(*host, Declared(R"(
assert(require("helpers").answer == 42)
assert(os.execute("true") == true)
local f = assert(io.popen("echo hi"))
assert(f:read("l") == "hi")
f:close()
assert(type(debug.sethook) == "function")
assert(type(package.loadlib) == "function")
)"));
  EXPECT_TRUE(s.ok()) << s.message();
}

TEST_F(LuaTest, SandboxKeepsTheSafeLibraries) {
  auto host = NewHost();
  Status s = Load(*host, Declared(R"(
assert(string.format("%05.1f", 3.14159) == "003.1")
assert(table.concat({ 1, 2, 3 }, ",") == "1,2,3")
assert(math.maxinteger == 9223372036854775807)
assert(utf8.len("héllo") == 5)
local co = coroutine.wrap(function() coroutine.yield(1) end)
assert(co() == 1)
assert(type(os.time()) == "number" and type(os.clock()) == "number")
assert(os.date("!%Y", 0) == "1970")
assert(type(debug.traceback()) == "string")
assert(load("return 1 + 1")() == 2)
local bytecode = string.dump(function() return 1 end)
local f, err = load(bytecode)
assert(f == nil and err:find("binary"), err)
local ok, e = pcall(function() return undefined_thing end)
assert(not ok and e:find("global 'undefined_thing' is not defined"), e)
assert(rawget(_G, "undefined_thing") == nil)
)"));
  EXPECT_TRUE(s.ok()) << s.message();
}

TEST_F(LuaTest, RequireFindsPureLuaModulesInTheScriptFolderOnly) {
  Write("helpers.lua", "return { answer = 42 }\n");
  Write("lib/util.lua", "return { name = 'util' }\n");
  Write("pkg/init.lua", "return 'pkg'\n");
  auto host = NewHost();
  Status s = Load(*host, Declared(R"(
assert(require("helpers").answer == 42)
assert(require("lib.util").name == "util")
assert(require("pkg") == "pkg")
local ok, err = pcall(require, "missing_module")
assert(not ok and err:find("no file '.*missing_module.lua'"), err)
assert(err:find("no embedded module 'missing_module'"), err)
ok, err = pcall(require, "../etc/passwd")
assert(not ok and err:find("not a module name"), err)
ok, err = pcall(require, "socket.core")
assert(not ok, "C module must not load")
)"));
  EXPECT_TRUE(s.ok()) << s.message();
}

TEST_F(LuaTest, IoReadsOnlyInsideTheScriptFolder) {
  Write("data/names.txt", "alice\nbob\n");
  std::string outside = (dir_.parent_path() / "siphon_outside_test.txt").string();
  std::ofstream(outside) << "secret\n";
  auto host = NewHost();
  Status s = Load(*host, Declared(R"(
local f = assert(io.open("data/names.txt"))
assert(f:read("l") == "alice")
f:close()
local n = 0
for line in io.lines("data/names.txt") do n = n + 1 end
assert(n == 2)
local missing, err = io.open("data/none.txt")
assert(missing == nil and err:find("No such file"), err)
local ok, e = pcall(io.open, "data/names.txt", "w")
assert(not ok and e:find("mode 'w' is not available in the siphon sandbox"), e)
ok, e = pcall(io.open, "../siphon_outside_test.txt")
assert(not ok and e:find("is outside the script's folder"), e)
ok, e = pcall(io.lines, "/etc/passwd")
assert(not ok and e:find("is outside the script's folder"), e)
)"));
  EXPECT_TRUE(s.ok()) << s.message();
  std::filesystem::remove(outside);
}

TEST_F(LuaTest, SymlinkOutOfTheFolderIsRefused) {
  std::string outside = (dir_.parent_path() / "siphon_outside_link_test.txt").string();
  std::ofstream(outside) << "secret\n";
  std::filesystem::create_symlink(outside, dir_ / "link.txt");
  auto host = NewHost();
  Status s = Load(*host, Declared("local f = io.open('link.txt')\n"));
  ASSERT_FALSE(s.ok());
  EXPECT_NE(FirstLine(s).find(ScriptPath() + ":4: io.open: 'link.txt' is outside the script's "
                                             "folder"),
            std::string::npos)
      << s.message();
  std::filesystem::remove(outside);
}

TEST_F(LuaTest, PrintAndLogGoToTheLuaLogger) {
  auto host = NewHost();
  auto sink = std::make_shared<std::ostringstream>();
  auto ostream_sink = std::make_shared<spdlog::sinks::ostream_sink_mt>(*sink);
  auto logger = Logger("lua");
  ASSERT_TRUE(logger);
  logger->sinks().push_back(ostream_sink);
  logger->set_level(spdlog::level::debug);
  Status s = Load(*host, Declared(R"(siphon.log.info("%s +%d rows", "orders", 42)
siphon.log.warn("100% literal")
siphon.log.error("%5.2f", 3.14159)
siphon.log.debug("dbg")
print("printed", 1, nil)
)"));
  logger->sinks().pop_back();
  ASSERT_TRUE(s.ok()) << s.message();
  std::string out = sink->str();
  EXPECT_NE(out.find(ScriptPath() + ":4: orders +42 rows"), std::string::npos) << out;
  EXPECT_NE(out.find(ScriptPath() + ":5: 100% literal"), std::string::npos) << out;
  EXPECT_NE(out.find(ScriptPath() + ":6:  3.14"), std::string::npos) << out;
  EXPECT_NE(out.find(ScriptPath() + ":7: dbg"), std::string::npos) << out;
  EXPECT_NE(out.find(ScriptPath() + ":8: printed\t1\tnil"), std::string::npos) << out;

  auto host2 = NewHost();
  s = Load(*host2, Declared("siphon.log.info('%d', 'x')\n"));
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(FirstLine(s), ScriptPath() +
                              ":4: siphon.log.info: bad argument #2 to "
                              "'string.format' (number expected, got string)");
}

}  // namespace
}  // namespace siphon::testing
