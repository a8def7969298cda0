--- po.http.serve: an HTTP server on the event loop. The C side
--- (src/core/httpd.c) reads requests and refuses what needs no policy
--- (bad paths, missing token, oversized headers or bodies); here requests
--- are routed, and each handler runs as a po.async task whose results
--- become the answer. See docs/scripting.md, "po.http.serve".
local core = require "poengine_core"
local future = require "poengine.future"

local type, pairs, ipairs, tostring, error, setmetatable = type, pairs, ipairs, tostring, error, setmetatable
local pcall = pcall
local sort, concat = table.sort, table.concat

local M = {}

local TEXT = { ["Content-Type"] = "text/plain; charset=utf-8" }

-- routes { ["GET /a"] = fn, ["GET /b/*"] = fn } -> exact { [path] = route },
-- prefixes (longest first), where route = { pattern =, prefix =, methods = { GET = fn } }
local function compile_routes(routes)
  if type(routes) ~= "table" then
    error('po.http.serve: routes must be a table of ["METHOD /path"] = function, got ' .. type(routes), 3)
  end
  local exact, prefixes, by_prefix = {}, {}, {}
  for key, fn in pairs(routes) do
    local method, path
    if type(key) == "string" then
      method, path = key:match "^(%u+) (/%S*)$"
    end
    if not method then
      error('po.http.serve: route ' .. tostring(key) .. ' must look like "GET /path" or "GET /prefix/*"', 3)
    end
    if type(fn) ~= "function" then
      error("po.http.serve: the handler of route '" .. key .. "' must be a function, got " .. type(fn), 3)
    end
    local prefix = path:match "^(.-)/%*$"
    local route
    if prefix then
      route = by_prefix[prefix]
      if not route then
        route = { pattern = path, prefix = prefix, methods = {} }
        by_prefix[prefix] = route
        prefixes[#prefixes + 1] = route
      end
    else
      route = exact[path] or { pattern = path, methods = {} }
      exact[path] = route
    end
    route.methods[method] = fn
  end
  sort(prefixes, function(a, b)
    return #a.prefix > #b.prefix
  end)
  return exact, prefixes
end

-- The most specific route with a handler for method; or nil and the methods
-- the path has routes for (nil when none: 404).
local function find_route(exact, prefixes, method, path)
  local matched = {}
  if exact[path] then
    matched[1] = exact[path]
  end
  for _, route in ipairs(prefixes) do
    local p = route.prefix
    if path == p or path:sub(1, #p + 1) == p .. "/" then
      matched[#matched + 1] = route
    end
  end
  for _, route in ipairs(matched) do
    local fn = route.methods[method] or (method == "HEAD" and route.methods.GET)
    if fn then
      return fn, route
    end
  end
  if matched[1] then
    local seen, allow = {}, {}
    for _, route in ipairs(matched) do
      for m in pairs(route.methods) do
        if not seen[m] then
          seen[m] = true
          allow[#allow + 1] = m
        end
      end
    end
    sort(allow)
    return nil, allow
  end
end

---@class poengine.HttpStream
local Stream = {}
Stream.__index = Stream

--- Sends s to the client at once (as one chunk). Returns true, or nil,
--- "closed", "ECONN" once the client or the server has gone.
---@param s string
function Stream:write(s)
  if type(s) ~= "string" then
    error("stream:write: s must be a string, got " .. type(s), 2)
  end
  return self._handle:write(s)
end

--- True once the client or the server has gone.
function Stream:closed()
  return self._handle:closed()
end

local function check_answer(status, headers, body)
  if type(status) ~= "number" or status % 1 ~= 0 or status < 100 or status > 599 then
    return nil, "the handler returned status " .. tostring(status) .. ", not an integer from 100 to 599"
  end
  if headers ~= nil and type(headers) ~= "table" then
    return nil, "the handler returned headers of type " .. type(headers) .. ", not a table"
  end
  local bt = type(body)
  if body ~= nil and bt ~= "string" and bt ~= "number" and bt ~= "function" then
    return nil, "the handler returned a body of type " .. bt .. ", not a string or a function"
  end
  return true
end

-- One request, as a task: the handler's answer, or a 500 and one line on
-- stderr (method and path only: headers may hold a token).
local function run_handler(srv, fn, handle, req)
  local function fail(err)
    srv._errors = srv._errors + 1
    io.stderr:write("poengine: http handler for ", req.method, " ", req.path, " failed: ", tostring(err), "\n")
    if not handle:closed() then
      pcall(handle.respond, handle, 500, TEXT, "internal server error\n")
    end
  end
  local ok, status, headers, body = pcall(fn, req)
  local err = status
  if ok then
    ok, err = check_answer(status, headers, body)
  end
  if not ok then
    fail(err)
  elseif type(body) == "function" then
    ok, err = pcall(handle.stream, handle, status, headers)
    if not ok then
      fail(err)
    elseif err then -- started (nil, "closed" when the client has gone already)
      ok, err = pcall(body, setmetatable({ _handle = handle }, Stream))
      if not ok then -- the status is sent: the stream can only end early
        srv._errors = srv._errors + 1
        io.stderr:write("poengine: http stream for ", req.method, " ", req.path, " failed: ", tostring(err), "\n")
      end
      handle:finish()
    end
  else
    ok, err = pcall(handle.respond, handle, status, headers, body ~= nil and tostring(body) or "")
    if not ok then
      fail(err)
    end
  end
  handle:release()
end

---@class poengine.HttpServer
---@field host string
---@field port integer
---@field url string
local Server = {}
Server.__index = Server

--- Stops listening and drops every connection. Handlers still running go
--- on; their answers and stream writes then get nil, "closed". Safe to call
--- twice.
function Server:close()
  if self._core then
    self._core:close()
    self._core = nil
    self._closed:resolve(true)
  end
end

--- Waits until the server is closed (yields inside po.async). Returns true,
--- or nil, message, "ETIMEDOUT" when timeout seconds pass first.
---@param timeout? number
function Server:wait(timeout)
  return self._closed:wait(timeout)
end

--- Counts: `requests` read (rejected ones included), `rejected` by the
--- server's own checks (400, 401, 413, 431), `active` connections,
--- `errors` (handlers that raised or returned something unusable).
---@return { requests: integer, rejected: integer, active: integer, errors: integer }
function Server:stats()
  local st = self._core and self._core:stats() or { requests = 0, rejected = 0, active = 0 }
  st.errors = self._errors
  return st
end

--- Starts an HTTP server on the event loop. Returns the server, or nil,
--- message, code ("EINVAL": host not numeric, or a token missing off
--- loopback; "EADDRINUSE"; "EIO").
---@param opts { host?: string, port?: integer, routes: table<string, function>, token?: string, max_connections?: integer, max_header_bytes?: integer, max_body_bytes?: integer, timeout?: number }
---@return poengine.HttpServer|nil, string?, string?
function M.serve(opts)
  if type(opts) ~= "table" then
    error("po.http.serve: options must be a table, got " .. type(opts), 2)
  end
  local exact, prefixes = compile_routes(opts.routes)
  local core_opts = {}
  for k, v in pairs(opts) do
    if k ~= "routes" then
      core_opts[k] = v
    end
  end
  local srv = setmetatable({ _errors = 0, _closed = future.future() }, Server)
  local function on_request(handle, req)
    local fn, route = find_route(exact, prefixes, req.method, req.path)
    if fn then
      req.route = route.pattern
      future.async(run_handler, srv, fn, handle, req)
    elseif route then
      local headers = { ["Content-Type"] = TEXT["Content-Type"], Allow = concat(route, ", ") }
      handle:respond(405, headers, "method not allowed\n")
      handle:release()
    else
      handle:respond(404, TEXT, "not found\n")
      handle:release()
    end
  end
  local c, err, code = core.httpd_serve(core_opts, on_request)
  if not c then
    return nil, err, code
  end
  srv._core = c
  srv.host = opts.host or "127.0.0.1"
  srv.port = c:port()
  srv.url = "http://" .. (srv.host:find ":" and "[" .. srv.host .. "]" or srv.host) .. ":" .. srv.port
  return srv
end

return M
