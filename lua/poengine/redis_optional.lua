--- A Redis connection an engine can do without: the cache's shared tier and
--- a run's published events use it. Every failure (refused, dropped, timed
--- out, an error reply) is counted and answered as "no reply"; after one,
--- the connection rests `retry` seconds (calls meanwhile are skipped, not
--- sent), so a dead server costs at most one timeout per rest instead of one
--- per call. The first failure of a server in a process is said once on
--- stderr, with the URL without its password. The client underneath
--- reconnects by itself while the loop runs.
local core = require "poengine_core"

local tostring, error = tostring, error
local now = core.now

local M = {}

-- Servers whose failure was said on stderr already, in this process.
local told = {}

--- The URL with any user and password taken out, for messages.
---@param url string
---@return string
function M.public_url(url)
  return (url:gsub("^(%a+://)[^@/]*@", "%1"))
end

---@class poengine.RedisOptional
local Conn = {}
Conn.__index = Conn

--- Connects to url, waiting at most `timeout` seconds for the first
--- connection; a server that cannot be reached is no error (the connection
--- starts failed and resting). `what` names the user in the stderr line
--- ("cache: the shared tier"). A malformed URL raises, as from `fn` at
--- `level`.
---@param url string
---@param opts { timeout: number, retry: number, what: string, fn: string, level: integer }
function M.open(url, opts)
  local client, ready, code = core.redis_connect(url, {
    connect_timeout = opts.timeout,
    command_timeout = opts.timeout,
    max_queue = 1000,
  })
  if not client then
    error(opts.fn .. ": " .. tostring(ready) .. " (" .. tostring(code) .. ")", opts.level + 1)
  end
  local self = setmetatable({
    client = client,
    url = M.public_url(url),
    what = opts.what,
    retry = opts.retry,
    down_until = -math.huge,
    failures = 0,
    skipped = 0,
  }, Conn)
  local ok, message, ecode = ready:wait()
  if not ok then
    self:failed(message, ecode)
  end
  return self
end

--- Counts a failure, says so once per server, and rests.
function Conn:failed(message, code)
  self.failures = self.failures + 1
  self.down_until = now() + self.retry
  if not told[self.url] then
    told[self.url] = true
    io.stderr:write("poengine: ", self.what, " at ", self.url, " failed (", tostring(code), ": ", tostring(message),
      "); going on without it until it answers again\n")
  end
end

--- Sends a command and waits for the reply (yielding inside a task):
--- reply, true | nil, false when resting or the command failed.
function Conn:call(...)
  if now() < self.down_until then
    self.skipped = self.skipped + 1
    return nil, false
  end
  local fut, message, code = self.client:command(...)
  local reply
  if fut then
    reply, message, code = fut:wait()
  end
  if reply == nil and code then
    if self.closed then
      return nil, false -- closed by its owner: not a failure of the server
    end
    self:failed(message, code)
    return nil, false
  end
  return reply, true
end

--- Whether the client is connected now.
function Conn:connected()
  return self.client:stats().connected and true or false
end

function Conn:close()
  self.closed = true
  self.client:close()
end

return M
