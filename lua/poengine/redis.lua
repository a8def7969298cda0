--- po.redis: a Redis client on the event loop (hiredis, src/core/redis.c).
--- Commands return futures; the client reconnects by itself. See
--- docs/scripting.md, "Redis".
local core = require "poengine_core"
local future = require "poengine.future"

local setmetatable, getmetatable, error = setmetatable, getmetatable, error

local M = {}

---@class poengine.RedisClient
local Client = {}
Client.__index = Client

local function check(self, fn)
  if getmetatable(self) ~= Client then
    error(fn .. ": call it as client:" .. fn:match "[^:]+$" .. "(...)", 3)
  end
  return self._c
end

-- An immediate failure (closed, queue full) as a failed future, so that
-- every call can be waited on the same way.
local function as_future(f, message, code)
  if f then
    return f
  end
  local failed = future.future()
  failed:reject(message, code)
  return failed
end

--- Sends a command (name and arguments: strings or numbers). The future
--- resolves to the reply: nil, a number, a string, or a table (arrays, with
--- `n` = the element count). An error reply fails it with "EREDIS".
---@return poengine.Future
function Client:command(...)
  return as_future(check(self, "client:command"):command(...))
end

--- Runs a Lua script on the server: EVALSHA with the script's SHA-1, then
--- EVAL if the server does not have it cached (NOSCRIPT).
---@param script string
---@param keys? (string|number)[]
---@param args? (string|number)[]
---@return poengine.Future
function Client:eval(script, keys, args)
  return as_future(check(self, "client:eval"):eval(script, keys, args))
end

--- Disconnects for good; commands not answered fail "ECANCELED". Safe to
--- call twice.
function Client:close()
  check(self, "client:close"):close()
end

--- Counters: commands, replies, errors, timeouts, failed, connects,
--- connect_failures, and now: queued, in_flight, connected.
---@return table
function Client:stats()
  return check(self, "client:stats"):stats()
end

--- Connects to url (`redis://[user:password@]host[:port][/db]`,
--- `unix:///path.sock[?db=N]`) and waits until connected, authenticated
--- and on its database; with `wait = false` returns at once and connects in
--- the background, commands waiting in the queue meanwhile.
---@param url string
---@param opts? { connect_timeout?: number, command_timeout?: number, max_queue?: integer, wait?: boolean }
---@return poengine.RedisClient|nil, string?, string?
function M.connect(url, opts)
  local c, ready, code = core.redis_connect(url, opts)
  if not c then
    return nil, ready, code
  end
  if ready then
    local ok, message, ecode = ready:wait()
    if not ok then
      c:close()
      return nil, message, ecode
    end
  end
  return setmetatable({ _c = c }, Client)
end

return M
