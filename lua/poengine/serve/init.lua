--- poengine serve: the runs of a home directory over HTTP, on the event
--- loop (po.http.serve) — the pages (pages.lua), the JSON API and the
--- event streams (api.lua, stream.lua), and /metrics (metrics.lua). Used
--- by `poengine serve` and `poengine optimize --serve`.
local po = require "poengine"
local api = require "poengine.serve.api"
local catalogue = require "poengine.serve.catalogue"
local metrics = require "poengine.serve.metrics"
local pages = require "poengine.serve.pages"

local M = {}

M.DEFAULT_LISTEN = "127.0.0.1:8080"

--- "HOST:PORT", "[IPv6]:PORT" or "PORT" (on 127.0.0.1) → host, port; nil,
--- message when it is none of these. "localhost" is 127.0.0.1.
function M.parse_listen(s)
  if type(s) ~= "string" or s == "" then
    return nil, "an address must be HOST:PORT, [IPv6]:PORT or PORT"
  end
  local host, port = s:match("^%[([%x:.]+)%]:(%d+)$")
  if not host then
    host, port = s:match("^([^:]+):(%d+)$")
  end
  if not host and s:match("^%d+$") then
    host, port = "127.0.0.1", s
  end
  port = tonumber(port)
  if host == "localhost" then
    host = "127.0.0.1" -- the server binds numeric addresses only
  end
  if not host or not port or port > 65535 then
    return nil, "'" .. s .. "' is not HOST:PORT, [IPv6]:PORT or PORT (0 to 65535)"
  end
  return host, port
end

-- The server's own figures, in the process's registry (and so in /metrics).
local function instruments()
  local by_key = {}
  local function request(route, code)
    local key = route .. " " .. code
    local c = by_key[key]
    if not c then
      c = po.metrics.counter("poengine_serve_requests", { help = "HTTP requests answered, by route and status.",
        labels = { route = route, code = code } })
      by_key[key] = c
    end
    return c
  end
  local seconds = po.metrics.histogram("poengine_serve_request_duration",
    { help = "Seconds from a request to its response's headers.", unit = "seconds" })
  return function(route, fn)
    return function(req)
      local t0 = po.now()
      local status, headers, body = fn(req)
      seconds:observe(po.now() - t0)
      request(route, status):inc()
      return status, headers, body
    end
  end
end

-- The id in "/prefix/<id>[/rest]", and the rest ("" when none).
local function id_and_rest(path, prefix)
  local tail = path:sub(#prefix + 1)
  local id, rest = tail:match("^([^/]+)(.*)$")
  return id, rest or ""
end

local function not_found(path)
  return api.json(404, { error = "no such page: " .. path, code = "ENOENT" })
end

--- The routes for a catalogue (see po.http.serve's routes).
function M.routes(cat, opts)
  opts = opts or {}
  local counted = instruments()
  return {
    ["GET /"] = counted("/", function()
      local models, broken = cat:models()
      return pages.index(models, broken, opts.home)
    end),
    ["GET /runs/*"] = counted("/runs", function(req)
      local id, rest = id_and_rest(req.path, "/runs/")
      if rest ~= "" and rest ~= "/fragment" then
        return not_found(req.path)
      end
      local m, err, code = cat:model(id)
      if not m then
        return api.error(err, code)
      end
      if rest == "/fragment" then
        return pages.fragment(m)
      end
      local st = po.files.stat(m.dir .. "/events.jsonl")
      return pages.run(m, st and st.size or 0)
    end),
    ["GET /metrics"] = counted("/metrics", function(req)
      local models = cat:models()
      local body, content_type = metrics.render(models, metrics.negotiate(req.headers.accept))
      return 200, { ["Content-Type"] = content_type }, body
    end),
    ["GET /api/runs"] = counted("/api/runs", function()
      return api.list(cat)
    end),
    ["GET /api/runs/*"] = counted("/api/runs", function(req)
      local id, rest = id_and_rest(req.path, "/api/runs/")
      if rest == "" then
        return api.run(cat, id)
      elseif rest == "/candidates" then
        return api.candidates(cat, id)
      elseif rest == "/events" then
        return api.events(cat, id, req, opts)
      end
      return not_found(req.path)
    end),
  }
end

--- Starts serving. opts: { home = dir } or { runs = { [id] = dir } },
--- listen = "HOST:PORT" (default 127.0.0.1:8080), token, and the server's
--- limits (max_connections, timeout, ...) passed on to po.http.serve.
--- Returns the server, or nil, message, code.
function M.start(opts)
  local host, port = M.parse_listen(opts.listen or M.DEFAULT_LISTEN)
  if not host then
    return nil, port, "EINVAL"
  end
  local cat = catalogue.new { home = opts.home, runs = opts.runs }
  return po.http.serve {
    host = host, port = port, token = opts.token, routes = M.routes(cat, opts),
    max_connections = opts.max_connections, timeout = opts.timeout,
  }
end

return M
