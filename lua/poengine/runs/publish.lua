--- Publishing a run's events to a Redis stream, so that one `poengine
--- serve` elsewhere shows a run whose candidates many workers validated
--- (poengine.runs.mirror reads the stream back into a run directory).
---
--- Each event is one stream entry, capped at about `maxlen` entries:
---   XADD <stream> MAXLEN ~ <maxlen> * worker <name> event <the events.jsonl line>
--- The line is exactly the one written to the run's events.jsonl; `worker`
--- (default: host name and pid) tells the processes that write to one
--- stream apart. Every process of a run publishes to the same stream
--- (by default "poengine:run:" .. the run id, and the run id defaults to the
--- task's id, which all workers of one task share).
---
--- Redis is optional here as for the cache (poengine.redis_optional): an
--- event that cannot be published is counted and the run goes on; the
--- local events.jsonl is complete either way.
local optional = require "poengine.redis_optional"
local options = require "poengine.util.options"

local type, tostring, error, floor = type, tostring, error, math.floor

local M = {}

M.STREAM_PREFIX = "poengine:run:"

local FIELDS = { redis = "string", stream = "string", maxlen = "number", worker = "string", timeout = "number",
  retry = "number" }

-- This machine's name, for the default worker name.
local function hostname()
  local f = io.open("/proc/sys/kernel/hostname", "rb")
  local name = f and f:read("*l")
  if f then
    f:close()
  end
  return (name and name ~= "") and name or "localhost"
end

--- The spec of a publish option: a table (task.publish), or a URL string
--- (POENGINE_PUBLISH), checked; raises naming `fn` on a mistake.
---@param spec table|string
---@param fn string  the function to name in errors
---@param level integer
---@return table spec
function M.check(spec, fn, level)
  if type(spec) == "string" then
    spec = { redis = spec }
  elseif type(spec) ~= "table" then
    error(fn .. ": publish must be a table or a redis:// URL, got " .. type(spec), level + 1)
  end
  options.check(fn, spec, FIELDS, level + 1, nil, "publish.")
  if not spec.redis then
    error(fn .. ": publish.redis (a redis:// or unix:// URL) is required", level + 1)
  end
  local m = spec.maxlen
  if m ~= nil and not (m >= 1 and m == floor(m) and m < 2 ^ 53) then
    error(fn .. ": publish.maxlen must be a positive integer, got " .. tostring(m), level + 1)
  end
  for _, name in ipairs { "timeout", "retry" } do
    local v = spec[name]
    if v ~= nil and not (v > 0 and v < math.huge) then
      error(fn .. ": publish." .. name .. " must be a positive number of seconds, got " .. tostring(v), level + 1)
    end
  end
  return spec
end

---@class poengine.RunPublisher
local Publisher = {}
Publisher.__index = Publisher

--- Connects a checked spec for the run `run_id`. A server that cannot be
--- reached is no error (see poengine.redis_optional).
---@param spec table
---@param run_id string
---@return poengine.RunPublisher
function M.open(spec, run_id)
  local pid = require("poengine.optimizer.record").process("self")
  return setmetatable({
    conn = optional.open(spec.redis, { timeout = spec.timeout or 1, retry = spec.retry or 1,
      what = "run events: the stream", fn = "po.optimizer: publish.redis", level = 4 }),
    stream = spec.stream or (M.STREAM_PREFIX .. run_id),
    maxlen = string.format("%d", spec.maxlen or 10000),
    worker = spec.worker or (hostname() .. ":" .. tostring(pid)),
    published = 0,
  }, Publisher)
end

--- Adds one event line (its JSON text, without the newline) to the
--- stream; true, or false when Redis failed (counted).
---@param line string
function Publisher:publish(line)
  local _, ok = self.conn:call("XADD", self.stream, "MAXLEN", "~", self.maxlen, "*", "worker", self.worker,
    "event", line)
  if ok then
    self.published = self.published + 1
  end
  return ok
end

--- { published, failures, skipped, connected, stream, worker }
function Publisher:stats()
  local c = self.conn
  return { published = self.published, failures = c.failures, skipped = c.skipped, connected = c:connected(),
    stream = self.stream, worker = self.worker }
end

function Publisher:close()
  self.conn:close()
end

return M
