local my = siphon.mysql { dsn = "mysql://u:p%zz@127.0.0.1:99999/db?x=1", tls = "yes", read_timeout = 0 }
siphon.target { path = siphon.env("NOPE", "r.db") }
siphon.replicate "select" { source = my, from = "`select`", cursor = "group", on = { synced = 1 } }
siphon.on("nope", function() end)
