#include "adapters/postgres/pg_connection.hpp"

#include <algorithm>
#include <cctype>
#include <cstdlib>
#include <cstring>

#include <spdlog/spdlog.h>

#include "adapters/postgres/pg_sql.hpp"
#include "adapters/postgres/pg_types.hpp"
#include "runtime/base/hex.hpp"
#include "runtime/loop/resolve.hpp"

namespace siphon::postgres {

namespace {

// Handles are heap-allocated and freed by the uv_close callback, so they may outlive the
// connection object by one loop turn; `data` is cleared first so no callback reaches it.
template <typename H>
void CloseHandle(H*& handle) {
  if (handle == nullptr) return;
  handle->data = nullptr;
  uv_close(reinterpret_cast<uv_handle_t*>(handle),
           [](uv_handle_t* h) { delete reinterpret_cast<H*>(h); });
  handle = nullptr;
}

std::string Sanitize(std::string_view message, const std::string& password) {
  std::string out(message);
  while (!out.empty() && (out.back() == '\n' || out.back() == ' ')) out.pop_back();
  // libpq indents a hint on its own line ("Connection refused\n\tIs the server running …"):
  // one line, without the tab, which a JSON log would show as "\t".
  std::string flat;
  for (size_t i = 0; i < out.size(); ++i) {
    if (out[i] != '\n') {
      flat += out[i];
      continue;
    }
    flat += ' ';
    while (i + 1 < out.size() && out[i + 1] == '\t') ++i;
  }
  out = std::move(flat);
  // The password as a whole word, as a connection string or URL would hold it
  // (`password=pw `, `:pw@`): inside a word it is part of that word (a password "a" masked
  // every "a" of the message, and "auth" turned "authentication" into "********entication").
  auto word = [](char c) { return std::isalnum(static_cast<unsigned char>(c)) != 0; };
  // Where the server names the role (`for user "bob"`, `role "bob" does not exist`), the
  // quoted text is the user name whatever the password is: a password equal to the user name
  // (or a word of it) left `user "********"`, which hid who was refused and told anyone who
  // knew the user name what the password was.
  auto in_role_name = [&out](size_t pos, size_t end) {
    if (pos == 0) return false;
    const size_t open = out.rfind('"', pos - 1);
    if (open == std::string::npos) return false;
    const size_t close = out.find('"', open + 1);
    if (close == std::string::npos || close < end) return false;
    std::string_view before(out.data(), open);
    for (std::string_view intro : {"user ", "role "}) {
      if (before.size() >= intro.size() &&
          before.compare(before.size() - intro.size(), intro.size(), intro) == 0) {
        return true;
      }
    }
    return false;
  };
  if (!password.empty()) {
    size_t pos = 0;
    while ((pos = out.find(password, pos)) != std::string::npos) {
      const size_t end = pos + password.size();
      if ((pos > 0 && word(out[pos - 1]) && word(password.front())) ||
          (end < out.size() && word(out[end]) && word(password.back())) || in_role_name(pos, end)) {
        ++pos;
        continue;
      }
      out.replace(pos, password.size(), "********");
      pos += 8;
    }
  }
  return out;
}

bool Contains(std::string_view haystack, std::string_view needle) {
  return haystack.find(needle) != std::string_view::npos;
}

size_t Occurrences(std::string_view haystack, std::string_view needle) {
  size_t n = 0;
  for (size_t at = haystack.find(needle); at != std::string_view::npos;
       at = haystack.find(needle, at + needle.size())) {
    ++n;
  }
  return n;
}

}  // namespace

Status PgResultError(const PGresult* result, bool connection_lost, const std::string& password) {
  const char* state = PQresultErrorField(result, PG_DIAG_SQLSTATE);
  const char* primary = PQresultErrorField(result, PG_DIAG_MESSAGE_PRIMARY);
  std::string sqlstate = state ? state : "";
  std::string message = primary ? primary : PQresultErrorMessage(result);
  auto in = [&sqlstate](const char* sqlstate_class) {
    return sqlstate.rfind(sqlstate_class, 0) == 0;
  };
  ErrorKind kind = ErrorKind::kQuery;  // transient: a lock or statement timeout, a deadlock, …
  if (connection_lost || in("08") || in("57P")) {
    kind = ErrorKind::kConnect;
  } else if (in("28") || sqlstate == "42501") {
    kind = ErrorKind::kAuth;
  } else if (sqlstate == "42601" || sqlstate == "3D000") {
    kind = ErrorKind::kConfig;  // a syntax error (in a `query`), a database that does not exist
  } else if (in("42") || in("3F") || in("0A") || in("21") || in("54") || sqlstate == "25006") {
    // Asking again gets the same answer: a missing table, column, function or schema, an
    // ambiguous or mistyped expression, a feature the server lacks, a subquery returning more
    // than one row, a statement too complex, a write in the read-only transaction.
    kind = ErrorKind::kSchema;
  } else if (in("22")) {
    kind = ErrorKind::kType;  // a data exception: a division by zero, a cast a value fails
  }
  if (!sqlstate.empty()) message += " (SQLSTATE " + sqlstate + ")";
  return Status(kind, Sanitize(message, password));
}

namespace {

// A connection's errors are asked for in libpq's verbose form, so that a server's refusal
// carries its SQLSTATE whatever language the server speaks (`lc_messages`): "FATAL:  28P01:
// Passwort-Authentifizierung … fehlgeschlagen\nLOCATION:  auth_failed, auth.c:334". Takes the
// codes out of the text into `codes` and drops the LOCATION lines (server source positions).
std::string TakeSqlStates(std::string_view libpq_message, std::vector<std::string>& codes) {
  std::string out(libpq_message);
  for (size_t at = out.find("\nLOCATION:  "); at != std::string::npos;
       at = out.find("\nLOCATION:  ", at)) {
    const size_t end = out.find('\n', at + 1);
    out.erase(at, end == std::string::npos ? std::string::npos : end - at);
  }
  auto code_char = [](char c) { return (c >= '0' && c <= '9') || (c >= 'A' && c <= 'Z'); };
  for (size_t at = out.find(":  "); at != std::string::npos; at = out.find(":  ", at + 3)) {
    const size_t code = at + 3;
    if (code + 7 > out.size() || out[code + 5] != ':' || out[code + 6] != ' ') continue;
    if (!std::all_of(out.begin() + static_cast<std::ptrdiff_t>(code),
                     out.begin() + static_cast<std::ptrdiff_t>(code + 5), code_char)) {
      continue;
    }
    codes.push_back(out.substr(code, 5));
    out.erase(code, 7);
  }
  return out;
}

}  // namespace

Status PgConnectError(std::string_view libpq_message, const std::string& password) {
  std::vector<std::string> codes;
  std::string message = Sanitize(TakeSqlStates(libpq_message, codes), password);
  if (!codes.empty()) {
    // The server said why (every address tried that answered): a refusal of the login or of
    // the database stands however often it is asked; anything else (too many clients, a
    // server starting up or shutting down) is worth another try.
    auto first = [&codes](auto&& match) {
      auto it = std::find_if(codes.begin(), codes.end(), match);
      return it == codes.end() ? std::string() : *it;
    };
    ErrorKind kind = ErrorKind::kConnect;
    std::string code =
        first([](const std::string& c) { return c.rfind("28", 0) == 0 || c == "42501"; });
    if (!code.empty()) {
      kind = ErrorKind::kAuth;
    } else if (code = first([](const std::string& c) { return c == "3D000"; }); !code.empty()) {
      kind = ErrorKind::kConfig;
    } else {
      code = codes.front();
    }
    return Status(kind, message + " (SQLSTATE " + code + ")");
  }
  ErrorKind kind = ErrorKind::kConnect;
  if (Contains(message, "password authentication failed") ||
      Contains(message, "no password supplied") || Contains(message, "authentication failed") ||
      Contains(message, "no pg_hba.conf entry") ||
      (Contains(message, "role \"") && Contains(message, "does not exist")) ||
      Contains(message, "is not permitted to log in") ||
      Contains(message, "permission denied for database")) {
    kind = ErrorKind::kAuth;
    if (!Contains(message, "SQLSTATE")) {
      message += Contains(message, "permission denied") ? " (SQLSTATE 42501)"
                 : Contains(message, "not permitted")   ? " (SQLSTATE 28000)"
                                                        : " (SQLSTATE 28P01)";
    }
  } else if (Contains(message, "database \"") && Contains(message, "does not exist")) {
    kind = ErrorKind::kConfig;
    message += " (SQLSTATE 3D000)";
  } else if (Contains(message, "does not support SSL, but SSL was required") &&
             Occurrences(message, "failed: ") ==
                 Occurrences(message, "does not support SSL, but SSL was required")) {
    // `sslmode` asks for TLS and every server tried has it off: asking again gets the same
    // answer until the script or the server changes (another host's timeout would not).
    kind = ErrorKind::kConfig;
    message += " (SQLSTATE 08001)";
  } else if (size_t bad_certificates = Occurrences(message, "certificate verify failed") +
                                       Occurrences(message, "does not match host name");
             bad_certificates > 0 && bad_certificates == Occurrences(message, "failed: ")) {
    // sslmode verify-ca/verify-full and the server's certificate is not signed by the CA or
    // does not name the host: the server failed to prove who it is, which asking again does
    // not change (and connecting anyway is what the user asked siphon not to do).
    kind = ErrorKind::kAuth;
    message +=
        " (the server's TLS certificate did not verify against sslrootcert: not connecting; "
        "SQLSTATE 08001)";
  } else if (!Contains(message, "SQLSTATE")) {
    message += " (SQLSTATE 08001)";
  }
  return Status(kind, message);
}

std::vector<PgDecoder> DecodersOf(const PGresult* result) {
  std::vector<PgDecoder> decoders(static_cast<size_t>(PQnfields(result)));
  for (size_t c = 0; c < decoders.size(); ++c) {
    decoders[c] =
        DecoderForOid(PQftype(result, static_cast<int>(c)), PQfmod(result, static_cast<int>(c)));
  }
  return decoders;
}

namespace {

// The value of one COPY text field with its backslash escapes undone (COPY TO writes \\, \t,
// \n, \r, \b, \f, \v; COPY FROM's octal \ooo and hex \xhh are read as well).
void Unescape(std::string_view field, std::string& out) {
  static constexpr std::string_view kLetters = "bfnrtv", kControls = "\b\f\n\r\t\v";
  auto digit = [&field](size_t at, int base) -> int {
    if (at >= field.size()) return -1;
    const char d = field[at];
    int v = d >= '0' && d <= '9'   ? d - '0'
            : d >= 'a' && d <= 'f' ? d - 'a' + 10
            : d >= 'A' && d <= 'F' ? d - 'A' + 10
                                   : -1;
    return v < base ? v : -1;
  };
  out.clear();
  for (size_t i = 0; i < field.size(); ++i) {
    if (field[i] != '\\' || i + 1 == field.size()) {
      out += field[i];
      continue;
    }
    const char c = field[++i];
    if (size_t k = kLetters.find(c); k != std::string_view::npos) {
      out += kControls[k];
      continue;
    }
    const bool hex = c == 'x' && digit(i + 1, 16) >= 0;
    if (!hex && digit(i, 8) < 0) {
      out += c;  // \\ and any other escaped character stand for themselves
      continue;
    }
    // \ooo (up to three octal digits) or \xhh (one or two hex digits).
    const int base = hex ? 16 : 8;
    size_t at = hex ? i + 1 : i;
    const size_t last = at + (hex ? 1 : 2);
    int v = 0;
    for (int d; at <= last && (d = digit(at, base)) >= 0; ++at) v = v * base + d;
    out += static_cast<char>(v);
    i = at - 1;
  }
}

}  // namespace

bool DecodeCopyRow(std::string_view line, const std::vector<PgDecoder>& decoders, RowBatch& batch,
                   size_t* rejected) {
  thread_local std::string scratch;
  size_t start = 0;
  for (size_t c = 0; c < decoders.size(); ++c) {
    size_t end = line.find('\t', start);
    if (end == std::string_view::npos) end = line.size();
    // Too few fields end the line early, too many leave tabs after the last column.
    if ((end == line.size()) != (c + 1 == decoders.size())) return false;
    std::string_view field = line.substr(start, end - start);
    start = end + 1;
    if (field.size() == 2 && field[0] == '\\' && field[1] == 'N') {
      batch.AddNull();
      continue;
    }
    if (field.find('\\') != std::string_view::npos) {
      Unescape(field, scratch);
      field = scratch;
    }
    if (decoders[c] == PgDecoder::kText) {
      batch.AddText(field);
    } else if (!AppendPgValue(decoders[c], field.data(), field.size(), batch) && rejected) {
      ++*rejected;
    }
  }
  return true;
}

bool BinaryCopyReader::Feed(std::string_view message, RowBatch& batch) {
  size_t at = 0;
  auto take = [&message, &at](size_t n, uint64_t& out) {
    if (message.size() - at < n) return false;
    out = 0;
    for (size_t i = 0; i < n; ++i) out = out << 8 | static_cast<uint8_t>(message[at + i]);
    at += n;
    return true;
  };
  uint64_t v = 0;
  if (!header_) {
    // "PGCOPY\n\377\r\n\0", the flags and the length of a header extension to skip. Flag
    // bits 16-31 mark format changes a reader must not read past (bit 16: rows carry OIDs,
    // which siphon never asks for); bits 0-15 may be ignored.
    static constexpr std::string_view kSignature("PGCOPY\n\377\r\n\0", 11);
    if (message.substr(0, kSignature.size()) != kSignature) return false;
    at = kSignature.size();
    if (!take(4, v) || (v & 0xFFFF0000u) != 0 || !take(4, v) || message.size() - at < v) {
      return false;
    }
    at += v;
    header_ = true;
  }
  while (at < message.size()) {
    if (finished_ || !take(2, v)) return false;
    if (v == 0xFFFF) {
      finished_ = true;
      continue;
    }
    if (v != decoders_.size()) return false;
    for (PgBinary decoder : decoders_) {
      if (!take(4, v)) return false;
      if (v == 0xFFFFFFFF) {
        batch.AddNull();
        continue;
      }
      if (v > message.size() - at ||
          !AppendPgBinary(decoder, message.data() + at, static_cast<size_t>(v), batch)) {
        return false;
      }
      at += v;
    }
  }
  return true;
}

RowBatch DecodeRows(const PGresult* result, size_t* rejected) {
  const int fields = PQnfields(result);
  const int rows = PQntuples(result);
  const std::vector<PgDecoder> decoders = DecodersOf(result);
  RowBatch batch(static_cast<size_t>(fields));
  // The result's memory holds every value's text plus a NUL and a 16-byte descriptor per
  // value: more than the decoded values need (a timestamp grows by at most 4 bytes), so the
  // arena is never reallocated and copied while the page is decoded.
  batch.Reserve(static_cast<size_t>(rows), PQresultMemorySize(result));
  size_t bad = 0;
  for (int r = 0; r < rows; ++r) {
    for (int c = 0; c < fields; ++c) {
      // A NULL has length 0: only an empty value needs the second look.
      const size_t size = static_cast<size_t>(PQgetlength(result, r, c));
      if (size == 0 && PQgetisnull(result, r, c)) {
        batch.AddNull();
        continue;
      }
      const char* text = PQgetvalue(result, r, c);
      if (decoders[c] == PgDecoder::kText) {
        batch.AddText(std::string_view(text, size));  // most columns: no call, no switch
      } else if (!AppendPgValue(decoders[c], text, size, batch)) {
        ++bad;
      }
    }
  }
  if (rejected != nullptr) *rejected = bad;
  return batch;
}

namespace {

// "a,b,,c" → {"a", "b", "", "c"}: libpq's comma-separated host and port lists.
std::vector<std::string> SplitList(const std::string& list) {
  std::vector<std::string> items;
  size_t start = 0;
  for (size_t comma; (comma = list.find(',', start)) != std::string::npos; start = comma + 1) {
    items.push_back(list.substr(start, comma - start));
  }
  items.push_back(list.substr(start));
  return items;
}

}  // namespace

PgHosts PgHostsOf(const PgConnectParams& params) {
  std::string host, hostaddr, port, service;
  bool expanded = false;
  auto take = [&](std::string_view k, const std::string& v) {
    if (k == "host") host = v;
    if (k == "hostaddr") hostaddr = v;
    if (k == "port") port = v;
    if (k == "service") service = v;
  };
  for (const auto& [k, v] : params.keywords) {
    if (k == "dbname" && params.expand_dbname && !expanded) {
      expanded = true;
      if (PQconninfoOption* parsed = PQconninfoParse(v.c_str(), nullptr)) {
        for (PQconninfoOption* o = parsed; o->keyword != nullptr; ++o) {
          if (o->val != nullptr) take(o->keyword, o->val);
        }
        PQconninfoFree(parsed);
      }
      continue;
    }
    take(k, v);
  }
  auto env = [](const char* name) {
    const char* v = std::getenv(name);
    return std::string(v != nullptr ? v : "");
  };
  if (host.empty() && hostaddr.empty()) {
    host = env("PGHOST");
    hostaddr = env("PGHOSTADDR");
  }
  if (port.empty()) port = env("PGPORT");
  if (service.empty()) service = env("PGSERVICE");
  PgHosts out;
  // With hostaddr libpq looks nothing up; a service file's hosts are libpq's to read.
  if (!hostaddr.empty() || !service.empty() || host.empty()) return out;
  out.hosts = SplitList(host);
  out.ports = port.empty() ? std::vector<std::string>{} : SplitList(port);
  for (const auto& h : out.hosts) out.needs_lookup = out.needs_lookup || PgHostIsName(h);
  return out;
}

bool PgHostIsName(const std::string& host) {
  return !host.empty() && host[0] != '/' && host[0] != '@' && !IsIpAddress(host);
}

Result<std::vector<std::pair<std::string, std::string>>> PgKeywordsWithAddresses(
    const PgConnectParams& params, const PgHosts& hosts,
    const std::vector<Result<std::vector<std::string>>>& found) {
  // Each name becomes one host item per address (libpq tries them in order, as it would
  // have); a socket or an address stays as it is (an empty hostaddr item).
  std::string host_list, addr_list, port_list;
  size_t items = 0;
  Status first_error;
  auto add = [&](const std::string& h, const std::string& a, const std::string& p) {
    host_list += (items ? "," : "") + h;
    addr_list += (items ? "," : "") + a;
    port_list += (items ? "," : "") + p;
    ++items;
  };
  for (size_t i = 0; i < hosts.hosts.size(); ++i) {
    const std::string port = hosts.ports.size() > 1 && i < hosts.ports.size() ? hosts.ports[i] : "";
    if (!PgHostIsName(hosts.hosts[i])) {
      add(hosts.hosts[i], "", port);
    } else if (!found[i].ok()) {
      if (first_error.ok()) first_error = found[i].status();
    } else {
      for (const auto& a : *found[i]) add(hosts.hosts[i], a, port);
    }
  }
  if (items == 0) return first_error;
  std::vector<std::pair<std::string, std::string>> keywords = params.keywords;
  keywords.emplace_back("host", host_list);
  keywords.emplace_back("hostaddr", addr_list);
  if (hosts.ports.size() > 1) keywords.emplace_back("port", port_list);
  return keywords;
}

PgConnection::PgConnection(uv_loop_t* loop, PgConnectParams params)
    : loop_(loop), params_(std::move(params)), hosts_(PgHostsOf(params_)) {
  timer_ = new uv_timer_t;
  uv_timer_init(loop_, timer_);
  timer_->data = this;
  defer_ = new uv_timer_t;
  uv_timer_init(loop_, defer_);
  defer_->data = this;
}

PgConnection::~PgConnection() {
  DropConnection();
  CloseHandle(timer_);
  CloseHandle(defer_);
}

bool PgConnection::ready() const {
  return state_ == State::kIdle && conn_ != nullptr && PQstatus(conn_) == CONNECTION_OK;
}

std::string PgConnection::ParameterStatus(const char* name) const {
  const char* value = conn_ ? PQparameterStatus(conn_, name) : nullptr;
  return value ? value : "";
}

void PgConnection::Post(std::function<void()> fn) {
  posted_.push_back(std::move(fn));
  uv_timer_start(
      defer_,
      [](uv_timer_t* t) {
        auto* self = static_cast<PgConnection*>(t->data);
        if (self == nullptr) return;
        auto fns = std::move(self->posted_);
        self->posted_.clear();
        std::weak_ptr<char> alive = self->alive_;
        for (auto& fn : fns) {
          fn();
          if (alive.expired()) return;  // a callback destroyed the connection
        }
      },
      0, 0);
}

void PgConnection::Connect(std::function<void(Status)> done) {
  if (ready()) {
    Post([done = std::move(done)] { done(Status::Ok()); });
    return;
  }
  if (state_ != State::kClosed && state_ != State::kIdle) {
    Post([done = std::move(done)] {
      done(Status(ErrorKind::kQuery, "postgres connection is busy"));
    });
    return;
  }
  DropConnection();
  state_ = State::kConnecting;
  connect_done_ = std::move(done);
  const uint64_t attempt = ++connect_attempt_;
  uv_timer_start(
      timer_,
      [](uv_timer_t* t) {
        auto* self = static_cast<PgConnection*>(t->data);
        if (self == nullptr) return;
        self->FailConnect(Status(ErrorKind::kConnect,
                                 "timed out connecting to postgres after " +
                                     std::to_string(self->params_.connect_timeout_ms) + " ms"));
      },
      static_cast<uint64_t>(params_.connect_timeout_ms), 0);

  // libpq looks host names up itself, blocking the loop for as long as a name server takes:
  // siphon looks them up on the thread pool first and gives libpq the addresses (`hostaddr`),
  // keeping each name as `host` for TLS verification and the password file.
  if (!hosts_.needs_lookup) return StartConnect(params_.keywords);
  struct Lookups {
    std::vector<Result<std::vector<std::string>>> found;
    size_t pending = 0;
  };
  auto lookups = std::make_shared<Lookups>();
  for (const std::string& h : hosts_.hosts) {
    lookups->found.emplace_back(std::vector<std::string>{});
    if (PgHostIsName(h)) ++lookups->pending;
  }
  for (size_t i = 0; i < hosts_.hosts.size(); ++i) {
    if (!PgHostIsName(hosts_.hosts[i])) continue;
    Status started = ResolveHost(
        loop_, hosts_.hosts[i], alive_,
        [this, lookups, i, attempt](Result<std::vector<std::string>> found) {
          lookups->found[i] = std::move(found);
          if (--lookups->pending > 0) return;
          // A timeout or Close since: this attempt is over.
          if (attempt != connect_attempt_ || state_ != State::kConnecting || conn_ != nullptr) {
            return;
          }
          Result<std::vector<std::pair<std::string, std::string>>> keywords =
              PgKeywordsWithAddresses(params_, hosts_, lookups->found);
          if (!keywords.ok()) return FailConnect(keywords.status());
          StartConnect(*keywords);
        });
    if (!started.ok()) {
      Post([this, attempt, started] {
        if (attempt == connect_attempt_) FailConnect(started);
      });
      return;
    }
  }
}

void PgConnection::StartConnect(const std::vector<std::pair<std::string, std::string>>& keywords) {
  std::vector<const char*> keys, values;
  for (const auto& [k, v] : keywords) {
    keys.push_back(k.c_str());
    values.push_back(v.c_str());
  }
  keys.push_back(nullptr);
  values.push_back(nullptr);
  conn_ = PQconnectStartParams(keys.data(), values.data(), params_.expand_dbname ? 1 : 0);
  // Until the session is up, errors carry their SQLSTATE (see PgConnectError).
  if (conn_ != nullptr) PQsetErrorVerbosity(conn_, PQERRORS_VERBOSE);
  if (conn_ == nullptr || PQstatus(conn_) == CONNECTION_BAD) {
    Status s = conn_ ? PgConnectError(PQerrorMessage(conn_), params_.password)
                     : Status(ErrorKind::kConnect, "libpq could not allocate a connection");
    const uint64_t attempt = connect_attempt_;
    Post([this, attempt, s] {
      if (attempt == connect_attempt_) FailConnect(s);
    });
    return;
  }
  // libpq's contract: after PQconnectStart, act as if PQconnectPoll returned WRITING.
  ResetPoll();
  if (poll_ == nullptr) {
    const uint64_t attempt = connect_attempt_;
    Post([this, attempt] {
      if (attempt == connect_attempt_) {
        FailConnect(Status(ErrorKind::kConnect, "postgres connection has no usable socket"));
      }
    });
    return;
  }
  Watch(UV_WRITABLE);
}

void PgConnection::ResetPoll() {
  // The socket may change between PQconnectPoll steps (another host or address, an SSL
  // retry), and a reused descriptor number would leave a stale epoll entry: start afresh.
  CloseHandle(poll_);
  poll_fd_ = -1;
  poll_events_ = 0;
  int fd = PQsocket(conn_);
  if (fd < 0) return;
  auto* poll = new uv_poll_t;
  if (uv_poll_init(loop_, poll, fd) != 0) {
    delete poll;
    return;
  }
  poll->data = this;
  poll_ = poll;
  poll_fd_ = fd;
}

void PgConnection::Watch(int events) {
  if (poll_ == nullptr) return;
  // An idle session stays watched for reading (so a server closing it is noticed at once,
  // and the next statement costs no epoll_ctl), but does not keep the loop running.
  if (state_ == State::kIdle) {
    uv_unref(reinterpret_cast<uv_handle_t*>(poll_));
  } else {
    uv_ref(reinterpret_cast<uv_handle_t*>(poll_));
  }
  if (events == poll_events_) return;
  poll_events_ = events;
  if (events == 0) {
    uv_poll_stop(poll_);
    return;
  }
  uv_poll_start(poll_, events, [](uv_poll_t* p, int status, int ev) {
    auto* self = static_cast<PgConnection*>(p->data);
    if (self != nullptr) self->OnPoll(status, ev);
  });
}

void PgConnection::OnPoll(int status, int events) {
  if (status < 0) {
    if (state_ == State::kConnecting) {
      // libpq may be moving to the next host on a new socket: let it find out.
      events = UV_READABLE | UV_WRITABLE;
    } else {
      // The socket is gone (libpq closes it when it finds the server went away, e.g. a
      // session terminated while idle): libuv stops the handle, so no later event would
      // ever come.
      Status lost(ErrorKind::kConnect, std::string("postgres connection lost: ") +
                                           uv_strerror(status) + " (" +
                                           Sanitize(PQerrorMessage(conn_), params_.password) + ")");
      if (state_ == State::kSetup || state_ == State::kBusy) {
        FailStatement(lost);
      } else {
        DropConnection();
      }
      return;
    }
  }
  switch (state_) {
    case State::kConnecting:
      OnConnectPoll();
      break;
    case State::kSetup:
    case State::kBusy:
      OnQueryIo(events);
      break;
    case State::kIdle:
      OnIdleInput();
      break;
    case State::kClosed:
      Watch(0);
      break;
  }
}

void PgConnection::OnIdleInput() {
  // Nothing is due between statements but a notice, or the server ending the session (an
  // administrator's pg_terminate_backend, a restart): then the connection is dropped now, and
  // the next statement connects again instead of failing.
  if (PQconsumeInput(conn_) != 0 && PQstatus(conn_) == CONNECTION_OK) {
    while (PQisBusy(conn_) == 0) {
      PGresult* r = PQgetResult(conn_);
      if (r == nullptr) return;
      PQclear(r);
    }
    return;
  }
  spdlog::info("postgres: the server closed an idle session ({}); the next query reconnects",
               Sanitize(PQerrorMessage(conn_), params_.password));
  DropConnection();
}

void PgConnection::OnConnectPoll() {
  switch (PQconnectPoll(conn_)) {
    case PGRES_POLLING_OK:
      PQsetErrorVerbosity(conn_, PQERRORS_DEFAULT);
      // The connect timer keeps running through the session setup round trip.
      if (PQsetnonblocking(conn_, 1) != 0) {
        FailConnect(PgConnectError(PQerrorMessage(conn_), params_.password));
        return;
      }
      ResetPoll();
      state_ = State::kSetup;
      SendSetup();
      return;
    case PGRES_POLLING_FAILED:
      FailConnect(PgConnectError(PQerrorMessage(conn_), params_.password));
      return;
    case PGRES_POLLING_READING:
      ResetPoll();
      Watch(UV_READABLE);
      break;
    case PGRES_POLLING_WRITING:
    default:
      ResetPoll();
      Watch(UV_WRITABLE);
      break;
  }
  if (poll_ == nullptr) {
    FailConnect(Status(ErrorKind::kConnect, "postgres connection has no usable socket"));
  }
}

void PgConnection::SendSetup() {
  // A SQL_ASCII database keeps whatever bytes it was given (Latin-1 text, often): the server
  // refuses to send a byte above 127 as UTF-8, which failed every page holding one. Its text
  // is read as it is stored instead, byte for byte.
  const char* encoding = PQparameterStatus(conn_, "server_encoding");
  const bool raw = encoding != nullptr && std::string_view(encoding) == "SQL_ASCII";
  const std::string setup =
      raw ? std::string("SET client_encoding = 'SQL_ASCII'; ") + kSessionSql : kSessionSql;
  if (PQsendQuery(conn_, setup.c_str()) == 0) {
    FailConnect(PgConnectError(PQerrorMessage(conn_), params_.password));
    return;
  }
  StartStatement();
}

namespace {
// Parameters as libpq takes them, pointing into `params`.
std::vector<const char*> CStrings(const std::vector<std::string>& params) {
  std::vector<const char*> values;
  values.reserve(params.size());
  for (const auto& p : params) values.push_back(p.c_str());
  return values;
}
}  // namespace

void PgConnection::Query(std::string sql, std::vector<std::string> params,
                         std::function<void(Result<PgResultPtr>)> done) {
  const std::vector<const char*> values = CStrings(params);
  // libpq copies the statement and parameters into its output buffer before returning.
  Send(
      [&] {
        return PQsendQueryParams(conn_, sql.c_str(), static_cast<int>(values.size()), nullptr,
                                 values.data(), nullptr, nullptr, 0);
      },
      std::move(done));
}

void PgConnection::QueryPrepared(std::string sql, std::vector<std::string> params,
                                 std::function<void(Result<PgResultPtr>)> done) {
  if (unprepared_ || state_ != State::kIdle) {
    return Query(std::move(sql), std::move(params), std::move(done));
  }
  Fnv1a hash;
  hash.Mix(sql);
  std::string name = "siphon_" + hash.Hex();
  if (prepared_.count(name)) {
    return ExecPrepared(std::move(name), std::move(sql), std::move(params), std::move(done));
  }
  if (prepared_.size() >= kMaxPrepared) {
    return Query(std::move(sql), std::move(params), std::move(done));
  }
  const int nparams = static_cast<int>(params.size());
  Send([&] { return PQsendPrepare(conn_, name.c_str(), sql.c_str(), nparams, nullptr); },
       [this, name, sql, params = std::move(params),
        done = std::move(done)](Result<PgResultPtr> r) mutable {
         const ErrorKind kind = r.ok() ? ErrorKind::kQuery : r.status().kind();
         if (!r.ok() && (kind == ErrorKind::kConnect || kind == ErrorKind::kCancelled)) {
           return done(r.status());
         }
         // 42P05: the session holds the name already, so the same text (a pooler's session
         // another client prepared it on).
         if (!r.ok() && r.status().message().find("(SQLSTATE 42P05)") == std::string::npos) {
           // The statement itself says what is wrong with it when run as it is, and a
           // server that refuses to prepare refuses every time.
           unprepared_ = true;
           return Query(std::move(sql), std::move(params), std::move(done));
         }
         prepared_.insert(name);
         ExecPrepared(std::move(name), std::move(sql), std::move(params), std::move(done));
       });
}

void PgConnection::ExecPrepared(std::string name, std::string sql, std::vector<std::string> params,
                                std::function<void(Result<PgResultPtr>)> done) {
  const std::vector<const char*> values = CStrings(params);
  Send(
      [&] {
        return PQsendQueryPrepared(conn_, name.c_str(), static_cast<int>(values.size()),
                                   values.data(), nullptr, nullptr, 0);
      },
      // `values` point into `params`: the retry keeps a copy of its own.
      [this, name, sql = std::move(sql), params,
       done = std::move(done)](Result<PgResultPtr> r) mutable {
        const std::string message = r.ok() ? std::string() : r.status().message();
        // 26000: the session lost it (DEALLOCATE, or a pooler that handed this transaction
        // another server session): from now on every statement runs as it is.
        if (message.find("(SQLSTATE 26000)") != std::string::npos) {
          unprepared_ = true;
          prepared_.clear();
          return Query(std::move(sql), std::move(params), std::move(done));
        }
        // 0A000: a table it reads changed so that its result columns would change type
        // ("cached plan must not change result type"); the server never plans it again. It
        // runs as it is this time, and is prepared anew the next.
        if (message.find("(SQLSTATE 0A000)") != std::string::npos) {
          prepared_.erase(name);
          return Query("DEALLOCATE " + name, {},
                       [this, sql = std::move(sql), params = std::move(params),
                        done = std::move(done)](Result<PgResultPtr> gone) mutable {
                         if (!gone.ok()) return done(gone.status());
                         Query(std::move(sql), std::move(params), std::move(done));
                       });
        }
        done(std::move(r));
      });
}

void PgConnection::Send(const std::function<int()>& send,
                        std::function<void(Result<PgResultPtr>)> done) {
  if (state_ != State::kIdle || conn_ == nullptr) {
    bool busy = state_ != State::kClosed;
    Post([done = std::move(done), busy] {
      done(busy ? Status(ErrorKind::kQuery, "postgres connection is busy")
                : Status(ErrorKind::kConnect, "postgres connection is not open"));
    });
    return;
  }
  if (send() == 0) {
    bool lost = PQstatus(conn_) != CONNECTION_OK;
    Status s(lost ? ErrorKind::kConnect : ErrorKind::kQuery,
             Sanitize(PQerrorMessage(conn_), params_.password));
    if (lost) DropConnection();
    Post([done = std::move(done), s] { done(s); });
    return;
  }
  state_ = State::kBusy;
  query_done_ = std::move(done);
  StartStatement();
}

void PgConnection::CopyOut(std::string sql, std::function<void(std::string_view)> row,
                           std::function<void(Result<PgResultPtr>)> done) {
  // Only the simple protocol takes several statements (and no parameters).
  Send([&] { return PQsendQuery(conn_, sql.c_str()); }, std::move(done));
  if (state_ == State::kBusy) copy_row_ = std::move(row);  // else refused, its error posted
}

void PgConnection::CopyOut(std::string sql, std::function<void(const PGresult*)> start,
                           std::function<void(std::string_view)> row,
                           std::function<void(Result<PgResultPtr>)> done) {
  CopyOut(std::move(sql), std::move(row), std::move(done));
  if (state_ == State::kBusy) copy_start_ = std::move(start);
}

Status PgConnection::LostError() const {
  return Status(ErrorKind::kConnect,
                Sanitize(PQerrorMessage(conn_), params_.password) + " (SQLSTATE 08006)");
}

void PgConnection::StartStatement() {
  int r = PQflush(conn_);
  if (r < 0) {
    FailStatement(LostError());
    return;
  }
  flushing_ = r == 1;
  Watch(flushing_ ? (UV_READABLE | UV_WRITABLE) : UV_READABLE);
  ArmReadTimeout();
}

void PgConnection::ArmReadTimeout() {
  if (state_ != State::kBusy || timer_ == nullptr) return;  // setup runs under the connect timer
  uv_timer_start(
      timer_,
      [](uv_timer_t* t) {
        auto* self = static_cast<PgConnection*>(t->data);
        if (self == nullptr || self->state_ != State::kBusy) return;
        self->FailStatement(
            Status(ErrorKind::kConnect, "no answer from postgres for " +
                                            std::to_string(self->params_.read_timeout_ms / 1000) +
                                            " s (read_timeout); the connection is dropped"));
      },
      static_cast<uint64_t>(params_.read_timeout_ms), 0);
}

void PgConnection::OnQueryIo(int events) {
  ArmReadTimeout();  // the server is answering (or taking what we send): the clock restarts
  if (events & UV_READABLE) {
    if (PQconsumeInput(conn_) == 0) {
      FailStatement(LostError());
      return;
    }
  }
  if (flushing_ && (events & (UV_READABLE | UV_WRITABLE))) {
    int r = PQflush(conn_);
    if (r < 0) {
      FailStatement(LostError());
      return;
    }
    flushing_ = r == 1;
  }
  if (!flushing_) {
    while (copying_ || PQisBusy(conn_) == 0) {
      if (copying_) {
        // COPY OUT: hand over every complete line there is; 0 means wait for more data.
        char* line = nullptr;
        int n;
        while ((n = PQgetCopyData(conn_, &line, 1)) > 0) {
          copy_row_(std::string_view(line, static_cast<size_t>(n)));
          PQfreemem(line);
        }
        if (n == 0) break;
        if (n == -2) {
          FailStatement(LostError());
          return;
        }
        copying_ = false;  // -1: the copy is done, its outcome follows
        continue;
      }
      PGresult* r = PQgetResult(conn_);
      if (r == nullptr) {
        FinishStatement();
        return;
      }
      if (PQresultStatus(r) == PGRES_COPY_OUT && copy_row_) {
        copying_ = true;
        PQclear(r);
        if (copy_start_) {
          auto start = std::move(copy_start_);
          copy_start_ = nullptr;
          start(error_ ? nullptr : result_.get());
        }
        continue;
      }
      if (PQresultStatus(r) == PGRES_FATAL_ERROR) {
        if (error_ == nullptr) {
          error_.reset(r);
        } else {
          PQclear(r);
        }
      } else {
        result_.reset(r);
      }
    }
  }
  Watch(flushing_ ? (UV_READABLE | UV_WRITABLE) : UV_READABLE);
}

void PgConnection::FinishStatement() {
  copy_row_ = nullptr;
  copy_start_ = nullptr;
  PgResultPtr result = std::move(result_);
  PgResultPtr error = std::move(error_);
  bool lost = PQstatus(conn_) != CONNECTION_OK;
  Status status;
  if (error) status = PgResultError(error.get(), lost, params_.password);
  State was = state_;
  if (timer_ != nullptr && was == State::kBusy) uv_timer_stop(timer_);
  if (lost) {
    DropConnection();
    if (status.ok()) status = Status(ErrorKind::kConnect, "postgres connection lost");
  } else {
    state_ = State::kIdle;
    Watch(UV_READABLE);
  }
  if (was == State::kSetup) {
    if (timer_ != nullptr) uv_timer_stop(timer_);
    if (!status.ok() && !lost) DropConnection();
    auto done = std::move(connect_done_);
    done(status);
    return;
  }
  auto done = std::move(query_done_);
  if (!status.ok()) {
    done(status);
  } else if (result == nullptr) {
    done(Status(ErrorKind::kQuery, "postgres returned no result"));
  } else {
    done(std::move(result));
  }
}

void PgConnection::FailStatement(Status status) {
  State was = state_;
  DropConnection();
  if (was == State::kSetup) {
    auto done = std::move(connect_done_);
    done(status);
  } else {
    auto done = std::move(query_done_);
    done(status);
  }
}

void PgConnection::FailConnect(Status status) {
  DropConnection();
  auto done = std::move(connect_done_);
  if (done) done(status);
}

void PgConnection::DropConnection() {
  CloseHandle(poll_);
  poll_fd_ = -1;
  poll_events_ = 0;
  flushing_ = false;
  copying_ = false;
  copy_row_ = nullptr;
  copy_start_ = nullptr;
  result_.reset();
  error_.reset();
  prepared_.clear();  // the next session holds none
  unprepared_ = false;
  if (timer_ != nullptr) uv_timer_stop(timer_);
  if (conn_ != nullptr) PQfinish(conn_);
  conn_ = nullptr;
  state_ = State::kClosed;
}

void PgConnection::Close() {
  auto connect_done = std::move(connect_done_);
  auto query_done = std::move(query_done_);
  connect_done_ = nullptr;
  query_done_ = nullptr;
  DropConnection();
  Status cancelled(ErrorKind::kCancelled, "postgres connection closed");
  if (connect_done) Post([connect_done, cancelled] { connect_done(cancelled); });
  if (query_done) Post([query_done, cancelled] { query_done(cancelled); });
}

}  // namespace siphon::postgres
