--- Mirroring runs published to Redis streams (poengine.runs.publish) into
--- <home>/runs/<id>/events.jsonl, so that the run model, `poengine runs`
--- and `poengine serve` (pages, API, SSE) show them as they show a local
--- run. A stream "poengine:run:<id>" becomes the run <id>.
---
--- Each entry becomes one line: the published event with two fields added,
--- `worker` (which process published it; poengine.runs.model tells the
--- workers of one run apart by it) and `stream_id` (the entry's id). The
--- last line's `stream_id` is where a mirror started again resumes, so a
--- line is written once even across restarts; no other state is kept.
---
--- A directory that holds a run of this machine's own (lines without
--- `stream_id`) is never written into: that stream is skipped, said once on
--- stderr.
local po = require "poengine"
local optional = require "poengine.redis_optional"
local publish = require "poengine.runs.publish"
local model = require "poengine.runs.model"

local type, pairs, ipairs, unpack = type, pairs, ipairs, unpack or table.unpack

local M = {}

local BATCH = 1000 -- entries per XREAD

--- The run id of a stream: its name after "poengine:run:", characters
--- outside [A-Za-z0-9_.-] made "_".
---@param stream string
---@return string
function M.run_id(stream)
  local prefix = publish.STREAM_PREFIX
  local id = stream:sub(1, #prefix) == prefix and stream:sub(#prefix + 1) or stream
  id = id:gsub("[^%w_.%-]", "_")
  if id == "" or id:match("^%.+$") then
    id = "_" .. id
  end
  return id
end

---@class poengine.RunMirror
local Mirror = {}
Mirror.__index = Mirror

--- A mirror of the streams of `redis` into `home`/runs: `streams` lists
--- them, or (nil) every stream whose name starts with "poengine:run:",
--- found again from time to time while following.
---@param opts { redis: string, home: string, streams?: string[], timeout?: number }
---@return poengine.RunMirror
function M.new(opts)
  local timeout = opts.timeout or 5
  local self = setmetatable({
    conn = optional.open(opts.redis, { timeout = timeout, retry = 1, what = "runs: the stream server",
      fn = "poengine.runs.mirror: redis", level = 3 }),
    block_ms = string.format("%d", math.max(1, math.floor(timeout * 500))), -- a blocking read ends well inside the timeout
    home = opts.home,
    fixed = opts.streams ~= nil,
    streams = {}, -- stream name -> { id, dir, last } or false (skipped)
    order = {},
    written = 0,
  }, Mirror)
  for _, stream in ipairs(opts.streams or {}) do
    self:add(stream)
  end
  return self
end

-- Takes stream on: its run directory made, its position read from the
-- last mirrored line. false when the directory holds a local run.
function Mirror:add(stream)
  if self.streams[stream] ~= nil then
    return self.streams[stream]
  end
  local id = M.run_id(stream)
  local dir = self.home .. "/runs/" .. id
  local s = { id = id, dir = dir, last = "0-0" }
  local events = model.events(dir)
  for _, ev in ipairs(events or {}) do
    if type(ev.stream_id) ~= "string" then
      io.stderr:write("poengine: runs: ", dir, " holds a run of this machine's own; stream ", stream,
        " is not mirrored into it\n")
      s = false
      break
    end
    s.last = ev.stream_id
  end
  if s and not events then
    po.run_sync { argv = { "mkdir", "-p", dir } }
  end
  self.streams[stream] = s
  if s then
    self.order[#self.order + 1] = stream
  end
  return s
end

--- Finds the streams to mirror (all "poengine:run:*" streams unless they
--- were given); false when Redis failed.
function Mirror:discover()
  if self.fixed then
    return true
  end
  local cursor = "0"
  repeat
    local reply, ok = self.conn:call("SCAN", cursor, "MATCH", publish.STREAM_PREFIX .. "*", "TYPE", "stream",
      "COUNT", 1000)
    if not ok then
      return false
    end
    cursor = reply[1]
    for i = 1, reply[2].n do
      self:add(reply[2][i])
    end
  until cursor == "0"
  return true
end

-- Appends a stream's entries (XREAD's [id, {field, value, ...}] pairs) to
-- its run's event log.
local function append(self, s, entries)
  local f = io.open(s.dir .. "/events.jsonl", "ab")
  if not f then
    return 0
  end
  local n = 0
  for i = 1, entries.n do
    local entry = entries[i]
    local fields, values = entry[2], {}
    for j = 1, fields.n - 1, 2 do
      values[fields[j]] = fields[j + 1]
    end
    local ev = type(values.event) == "string" and po.json.decode(values.event)
    if type(ev) == "table" then
      ev.worker = values.worker or "?"
      ev.stream_id = entry[1]
      f:write(po.json.encode(ev, { sort_keys = true }), "\n")
      n = n + 1
    end
    s.last = entry[1]
  end
  f:close()
  return n
end

--- One XREAD of every stream (blocking up to about half the timeout with
--- `block`): the number of events written, or nil when Redis failed.
---@param block? boolean
function Mirror:read(block)
  local argv = { "XREAD", "COUNT", BATCH }
  if block then
    argv[#argv + 1] = "BLOCK"
    argv[#argv + 1] = self.block_ms
  end
  argv[#argv + 1] = "STREAMS"
  local ids = {}
  for _, name in ipairs(self.order) do
    argv[#argv + 1] = name
    ids[#ids + 1] = self.streams[name].last
  end
  if #ids == 0 then
    return 0
  end
  for _, id in ipairs(ids) do
    argv[#argv + 1] = id
  end
  local reply, ok = self.conn:call(unpack(argv))
  if not ok then
    return nil
  end
  local n = 0
  for i = 1, reply and reply.n or 0 do
    local name, entries = reply[i][1], reply[i][2]
    n = n + append(self, self.streams[name], entries)
  end
  self.written = self.written + n
  return n
end

--- Copies everything the streams hold beyond what was mirrored, then
--- returns: the number of events written, or nil, message when Redis failed.
function Mirror:pull()
  if not self:discover() then
    return nil, "cannot list the streams at " .. self.conn.url
  end
  local total = 0
  while true do
    local n = self:read(false)
    if not n then
      return nil, "cannot read the streams at " .. self.conn.url
    end
    total = total + n
    if n == 0 then
      return total
    end
  end
end

--- Keeps mirroring until close(), in a task of its own: blocking reads on
--- the loop, streams found again every `rescan` seconds (default 5), a
--- pause after a failure. Returns the task's future.
---@param rescan? number
function Mirror:follow(rescan)
  rescan = rescan or 5
  return po.async(function()
    local found = -math.huge
    while not self.closed do
      if po.now() - found >= rescan then
        self:discover()
        found = po.now()
      end
      local n = #self.order > 0 and self:read(true)
      if not n and not self.closed then
        po.sleep(#self.order > 0 and 1 or math.min(rescan, 1)) -- Redis failed (resting), or nothing to read yet
      end
    end
  end)
end

--- Stops following (the read in flight ends within the timeout) and
--- disconnects. Safe to call twice.
function Mirror:close()
  if not self.closed then
    self.closed = true
    self.conn:close()
  end
end

--- { written, streams = { [name] = run id }, failures, connected }
function Mirror:stats()
  local streams = {}
  for name, s in pairs(self.streams) do
    streams[name] = s and s.id or false
  end
  return { written = self.written, streams = streams, failures = self.conn.failures, connected = self.conn:connected() }
end

return M
