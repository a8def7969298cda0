--- `poengine serve [--home DIR] [--listen ADDR] [--token T] [--redis URL]`:
--- the runs of a home directory over HTTP until stopped — a page of every
--- run, a live page of each, /metrics for Prometheus and a JSON API — and
--- with --redis the runs published to that server's streams, mirrored into
--- the home as they come (docs/cli.md).
local M = {
  summary = "serve the runs: live pages, /metrics, a JSON API (serve [--listen ADDR])",
}

local USAGE = [[
usage: poengine serve [--home DIR] [--listen ADDR] [--token TOKEN] [--redis URL]
  --home DIR      the runs of DIR/runs (default: $POENGINE_HOME, else
                  $XDG_CACHE_HOME/poengine, else ~/.cache/poengine)
  --listen ADDR   HOST:PORT, [IPv6]:PORT or PORT (default 127.0.0.1:8080;
                  port 0 picks a free one)
  --token TOKEN   every request must carry "Authorization: Bearer TOKEN"
                  (default: $POENGINE_TOKEN); required off loopback
  --redis URL     also mirror the runs published to this Redis server's
                  poengine:run:* streams into DIR/runs, live
exit status: 1 when it cannot serve (the address is taken, no token off
loopback), 2 usage
]]

--- Parses the arguments: { home, listen, token, help }, or nil, message.
function M.parse(args)
  local opts = {}
  local i = 1
  while i <= #args do
    local a = args[i]
    local name = a:match("^%-%-(%a+)$")
    if a == "-h" or a == "--help" then
      opts.help = true
    elseif name == "home" or name == "listen" or name == "token" or name == "redis" then
      if args[i + 1] == nil then
        return nil, "option " .. a .. " needs a value"
      end
      opts[name] = args[i + 1]
      i = i + 1
    else
      return nil, "unexpected argument '" .. a .. "'"
    end
    i = i + 1
  end
  return opts
end

function M.main(args)
  local opts, err = M.parse(args)
  if not opts then
    io.stderr:write("poengine serve: ", err, "\n", USAGE)
    return 2
  end
  if opts.help then
    io.write(USAGE)
    return 0
  end
  local po = require "poengine"
  local serve = require "poengine.serve"
  if opts.listen and not serve.parse_listen(opts.listen) then
    io.stderr:write("poengine serve: --listen: ", select(2, serve.parse_listen(opts.listen)), "\n", USAGE)
    return 2
  end
  local home = opts.home
  if not home then
    local derr
    home, derr = po.store.default_dir()
    if not home then
      io.stderr:write("poengine serve: ", tostring(derr), "\n")
      return 1
    end
  end
  local token = opts.token or os.getenv("POENGINE_TOKEN")
  if token == "" then
    token = nil
  end
  local mirror
  if opts.redis then
    local ok, m = pcall(require("poengine.runs.mirror").new, { redis = opts.redis, home = home })
    if not ok then
      io.stderr:write("poengine serve: --redis: ", tostring(m), "\n")
      return 2
    end
    mirror = m
  end
  local srv, serr = serve.start { home = home, listen = opts.listen, token = token }
  if not srv then
    io.stderr:write("poengine serve: ", tostring(serr), "\n")
    return 1
  end
  -- The address goes to stdout first, flushed: with port 0 it is how a
  -- script learns which port was picked.
  io.stdout:write("poengine serve: ", srv.url, " (", home, ")\n")
  io.stdout:flush()
  if mirror then
    mirror:follow()
  end
  srv:wait()
  return 0
end

return M
