--- Test helper: a private redis-server (Debian's) for the specs that need
--- one, on a free 127.0.0.1 port and a unix socket in a directory the caller
--- owns. Started through po.run, so it dies with the spec's process group.
local po = require "poengine"
local proc = require "tests.tools.proc"

local M = {}

function M.free_port()
  local srv = assert(po.http.serve { host = "127.0.0.1", port = 0, routes = {} })
  local port = srv.port
  srv:close()
  return port
end

-- A running redis-server: { port =, sock =, fut =, dir = }, ready for
-- connections. extra: more arguments (--requirepass ...).
function M.start(dir, port, extra)
  local sock = dir .. "/redis.sock"
  local argv = { "redis-server", "--port", tostring(port), "--bind", "127.0.0.1", "--unixsocket", sock,
    "--save", "", "--appendonly", "no", "--dir", dir, "--pidfile", dir .. "/redis.pid",
    "--enable-debug-command", "yes", "--daemonize", "no" }
  for _, a in ipairs(extra or {}) do
    argv[#argv + 1] = a
  end
  for _ = 1, 5 do
    local fut = po.run { argv = argv }
    for _ = 1, 200 do
      if fut:done() then
        break -- exited (the port still held by the last one): start again
      end
      local f = io.open(dir .. "/redis.pid")
      if f then
        f:close()
        local c = po.redis.connect("unix://" .. sock, { connect_timeout = 1 })
        if c or not fut:done() and select(3, po.redis.connect("unix://" .. sock)) == "EAUTH" then
          if c then
            c:close()
          end
          return { port = port, sock = sock, fut = fut, dir = dir }
        end
      end
      po.sleep(0.05)
    end
    if not fut:done() then
      fut:cancel()
    end
    po.sleep(0.2)
  end
  error("redis-server did not start")
end

-- Sends sig to the server and waits until it has exited.
function M.kill(server, sig)
  local pid = proc.read(server.dir .. "/redis.pid"):match "%d+"
  os.remove(server.dir .. "/redis.pid")
  os.execute("kill -" .. sig .. " " .. pid)
  server.fut:wait(30)
end

function M.kill9(server)
  M.kill(server, "KILL")
end

function M.stop(server)
  if server and not server.fut:done() then
    M.kill(server, "TERM")
  end
end

--- start() in a new temporary directory, on a free port; stop_dir() undoes it.
function M.start_temp(extra)
  local dir = proc.tempdir()
  local server = M.start(dir, M.free_port(), extra)
  server.url = "redis://127.0.0.1:" .. server.port
  server.unix_url = "unix://" .. server.sock
  return server
end

--- Stops the server (if running) and removes its directory.
function M.stop_temp(server)
  if server then
    M.stop(server)
    proc.rmdir(server.dir)
  end
end

return M
