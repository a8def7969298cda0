--- The optimization-cycle collector: one record per cycle (LLM calls and
--- cache hits, tokens, cost, validation time, file operations, outcome,
--- score), statistics over the history, exports. It keeps the reference
--- design's names (start_cycle, record_llm_call, record_validation,
--- record_file_operation, end_cycle, statistics, recent, cycles, clear,
--- export).
---
--- History lives in memory, or, with `path`, in the store (an append-only
--- record log, poengine_core.store): each cycle is one binary record
--- (poengine.metrics.record) committed at end_cycle, in a transaction whose
--- cost does not depend on how long the history is. Several processes may
--- append to one store; a collector reopened on it sees the history.
---
--- Besides the cycles, a collector keeps one run record (col:set_run,
--- col:run): what is known of the run as a whole — the objective's
--- direction ("max", the default: a higher score is better, or "min"), and
--- what an optimizer adds at its end (the final check, the accepted chain).
---
--- Each collector also feeds the metrics primitives (labelled with its
--- name), so po.metrics.expose() shows its cycles, calls and latencies
--- (poengine.metrics.instruments).
local core = require "poengine_core"
local history = require "poengine.metrics.history"
local instruments = require "poengine.metrics.instruments"
local record = require "poengine.metrics.record"
local stats = require "poengine.metrics.stats"

local type, error, pairs, ipairs, setmetatable, tostring = type, error, pairs, ipairs, setmetatable, tostring
local floor = math.floor
local now, time = core.now, core.time

local M = {}

local Collector = {}
Collector.__index = Collector

local BATCH = 256

-- ---- options ----------------------------------------------------------------

local durabilities = { none = true, batch = true, full = true }
local OPTIONS = { max_history = true, path = true, name = true, durability = true, direction = true }
local check_names = require("poengine.util.options").check

local function check_options(opts)
  if opts == nil then
    opts = {}
  elseif type(opts) ~= "table" then
    error("po.metrics.collector: options must be a table, got " .. type(opts), 3)
  end
  check_names("po.metrics.collector", opts, OPTIONS, 3)
  local max = opts.max_history or 1000
  if type(max) ~= "number" or max < 1 or max ~= floor(max) or max > 2 ^ 53 then
    error("po.metrics.collector: max_history must be a whole number >= 1, got " .. tostring(opts.max_history), 3)
  end
  if opts.path ~= nil and (type(opts.path) ~= "string" or opts.path == "") then
    error("po.metrics.collector: path must be a directory name or nil", 3)
  end
  local name = opts.name or "default"
  if type(name) ~= "string" or name == "" then
    error("po.metrics.collector: name must be a non-empty string", 3)
  end
  local durability = opts.durability or "none"
  if not durabilities[durability] then
    error("po.metrics.collector: durability must be 'none', 'batch' or 'full', got " .. tostring(durability), 3)
  end
  if opts.direction ~= nil and opts.direction ~= "min" and opts.direction ~= "max" then
    error("po.metrics.collector: direction must be 'min' or 'max', got " .. tostring(opts.direction), 3)
  end
  return max, opts.path, name, durability, opts.direction
end

-- ---- the collector --------------------------------------------------------

--- Creates a collector (po.metrics.collector, which passes itself as
--- metrics: the primitives the collector feeds).
--- With direction, the run record says it (a store's record keeps the
--- direction it was given until another is).
---@param opts? { max_history?: integer, path?: string, name?: string, durability?: "none"|"batch"|"full", direction?: "min"|"max" }
---@param metrics table   poengine.metrics
---@return table|nil collector, string? message, string? code
function M.new(opts, metrics)
  local max, path, name, durability, direction = check_options(opts)
  local h, err, code
  if path then
    h, err, code = history.stored(path, durability)
    if not h then
      return nil, err, code
    end
  else
    h = history.memory()
  end
  local col = setmetatable({
    max_history = max,
    path = path,
    name = name,
    _history = h,
    _active = {},
    _nactive = 0,
    _ins = instruments.new(metrics, name),
  }, Collector)
  if direction then
    local ok, serr, scode = col:set_run { direction = direction }
    if not ok then
      col:close()
      return nil, serr, scode
    end
  end
  return col
end

function M.is_collector(v)
  return getmetatable(v) == Collector
end

local function check_id(method, id)
  local t = type(id)
  if (t ~= "string" and t ~= "number") or id ~= id then
    error(("%s: id must be a string or a number, got %s"):format(method, t), 3)
  end
end

local function no_cycle(method, id)
  return nil, ("%s: no active cycle %s"):format(method, type(id) == "string" and ("'" .. id .. "'") or tostring(id)),
    "ENOCYCLE"
end

--- Starts cycle id (a string or number not already active) and returns its
--- live record; the fields score and best_score (and metadata) may be set
--- on it until end_cycle. Starting an active id raises.
---@param id string|number
---@param metadata? table
---@return table record
function Collector:start_cycle(id, metadata)
  check_id("col:start_cycle", id)
  if self._active[id] then
    error(("col:start_cycle: cycle %s is already active"):format(tostring(id)), 2)
  end
  if metadata ~= nil and type(metadata) ~= "table" then
    error("col:start_cycle: metadata must be a table or nil, got " .. type(metadata), 2)
  end
  local ok, err = pcall(record.encode_value, metadata, "metadata")
  if not ok then
    error("col:start_cycle: " .. err, 2)
  end
  local rec = {
    cycle_id = id,
    start_time = time(),
    llm_calls = 0,
    llm_cache_hits = 0,
    llm_cache_misses = 0,
    tokens_in = 0,
    tokens_out = 0,
    tokens_saved = 0,
    cost = 0,
    cost_saved = 0,
    validation_time = 0,
    validation_count = 0,
    file_operations = 0,
    metadata = metadata,
  }
  self._active[id] = { rec = rec, t0 = now() }
  self._nactive = self._nactive + 1
  self._ins.active:add(1)
  return rec
end

local function nonneg(method, what, v, default)
  if v == nil then
    return default
  end
  if type(v) ~= "number" or not (v >= 0) or v == math.huge then
    error(("%s: %s must be a finite number >= 0, got %s"):format(method, what, tostring(v)), 3)
  end
  return v
end

local llm_fields = { cache_hit = true, tokens_in = true, tokens_out = true, cost = true, latency = true, provider = true }

--- Records one LLM call in cycle id. A cache hit's tokens and cost are what
--- the call would have cost: they count as saved, not spent.
---@param id string|number
---@param call { cache_hit?: boolean, tokens_in?: integer, tokens_out?: integer, cost?: number, latency?: number, provider?: string }
---@return true|nil ok, string? message, string? code
function Collector:record_llm_call(id, call)
  local m = "col:record_llm_call"
  check_id(m, id)
  if call == nil then
    call = {}
  elseif type(call) ~= "table" then
    error(m .. ": call must be a table, got " .. type(call), 2)
  end
  check_names(m, call, llm_fields, 2, "field")
  local tin = nonneg(m, "tokens_in", call.tokens_in, 0)
  local tout = nonneg(m, "tokens_out", call.tokens_out, 0)
  local cost = nonneg(m, "cost", call.cost, 0)
  local latency = nonneg(m, "latency", call.latency, nil)
  local provider = call.provider or "unknown"
  if type(provider) ~= "string" then
    error(m .. ": provider must be a string, got " .. type(provider), 2)
  end
  local a = self._active[id]
  if not a then
    return no_cycle(m, id)
  end
  local rec, ins = a.rec, self._ins
  local p = instruments.provider(ins, provider)
  rec.llm_calls = rec.llm_calls + 1
  if call.cache_hit then
    rec.llm_cache_hits = rec.llm_cache_hits + 1
    rec.tokens_saved = rec.tokens_saved + tin + tout
    rec.cost_saved = rec.cost_saved + cost
    p.hit:inc()
  else
    rec.llm_cache_misses = rec.llm_cache_misses + 1
    rec.tokens_in = rec.tokens_in + tin
    rec.tokens_out = rec.tokens_out + tout
    rec.cost = rec.cost + cost
    p.miss:inc()
    ins.tokens_in:inc(tin)
    ins.tokens_out:inc(tout)
    ins.cost:inc(cost)
  end
  if latency then
    p.latency:observe(latency)
  end
  return true
end

--- Records validation work in cycle id: duration seconds over count runs
--- (default 1).
---@return true|nil ok, string? message, string? code
function Collector:record_validation(id, duration, count)
  local m = "col:record_validation"
  check_id(m, id)
  duration = nonneg(m, "duration", duration, nil)
  if duration == nil then
    error(m .. ": duration must be a finite number >= 0, got nil", 2)
  end
  count = nonneg(m, "count", count, 1)
  local a = self._active[id]
  if not a then
    return no_cycle(m, id)
  end
  a.rec.validation_time = a.rec.validation_time + duration
  a.rec.validation_count = a.rec.validation_count + count
  self._ins.validation:observe(duration)
  return true
end

--- Records n (default 1) file operations in cycle id.
---@return true|nil ok, string? message, string? code
function Collector:record_file_operation(id, n)
  local m = "col:record_file_operation"
  check_id(m, id)
  n = nonneg(m, "n", n, 1)
  local a = self._active[id]
  if not a then
    return no_cycle(m, id)
  end
  a.rec.file_operations = a.rec.file_operations + n
  self._ins.file_operations:inc(n)
  return true
end

-- A score as record_score takes it: a finite number, or a non-empty list
-- of finite numbers (a tuple of objectives). Returns the number the
-- record's numeric field holds (the tuple's first component) and the
-- tuple (nil for a number); raises naming the argument otherwise.
local function score_value(m, name, v)
  local function finite(x)
    return type(x) == "number" and x == x and x ~= math.huge and x ~= -math.huge
  end
  if type(v) == "number" then
    return v
  end
  local ok = type(v) == "table" and #v > 0
  local tuple, keys = {}, 0
  for i = 1, ok and #v or 0 do
    ok = ok and finite(v[i])
    tuple[i] = v[i]
  end
  for _ in pairs(ok and v or {}) do
    keys = keys + 1
  end
  if not ok or keys ~= #v then
    error(m .. ": " .. name .. " must be a number or a list of finite numbers", 3)
  end
  return tuple[1], tuple
end

--- Sets the cycle's score (and best score so far), as the optimizer sees
--- them: numbers, or tuples (lists of finite numbers), kept whole in the
--- record's metadata.score and metadata.best_score while score and
--- best_score hold their first components (what charts and statistics use).
---@param score number|number[]
---@param best_score? number|number[]
---@return true|nil ok, string? message, string? code
function Collector:record_score(id, score, best_score)
  local m = "col:record_score"
  check_id(m, id)
  local s, s_tuple = score_value(m, "score", score)
  local b, b_tuple
  if best_score ~= nil then
    b, b_tuple = score_value(m, "best_score", best_score)
  end
  local a = self._active[id]
  if not a then
    return no_cycle(m, id)
  end
  a.rec.score = s
  if b ~= nil then
    a.rec.best_score = b
  end
  if s_tuple or b_tuple then
    local meta = a.rec.metadata or {}
    meta.score, meta.best_score = s_tuple or meta.score, b_tuple or meta.best_score
    a.rec.metadata = meta
  end
  return true
end

--- Merges fields into active cycle id's metadata (made a table if it was
--- none): what the cycle learned as it ran, such as an optimizer's outcome
--- counts. Values must be storable (see start_cycle's metadata).
---@param id string|number
---@param fields table
---@return true|nil ok, string? message, string? code
function Collector:annotate(id, fields)
  local m = "col:annotate"
  check_id(m, id)
  if type(fields) ~= "table" then
    error(m .. ": fields must be a table, got " .. type(fields), 2)
  end
  local ok, err = pcall(record.encode_value, fields, "fields")
  if not ok then
    error(m .. ": " .. err, 2)
  end
  local a = self._active[id]
  if not a then
    return no_cycle(m, id)
  end
  local meta = a.rec.metadata
  if type(meta) ~= "table" then
    meta = {}
    a.rec.metadata = meta
  end
  for k, v in pairs(fields) do
    meta[k] = v
  end
  return true
end

--- Ends cycle id: fills end_time, duration, success and error, and appends
--- the record to the history (one committed write with a path), trimming the
--- oldest beyond max_history. Returns the record, or nil, message, code
--- ("ENOCYCLE", or a store failure such as "EMAPFULL"; the cycle is ended
--- either way).
---@param id string|number
---@param success boolean
---@param err? string
---@return table|nil record, string? message, string? code
function Collector:end_cycle(id, success, err)
  local m = "col:end_cycle"
  check_id(m, id)
  local a = self._active[id]
  if not a then
    return no_cycle(m, id)
  end
  local rec = a.rec
  rec.end_time = time()
  rec.duration = now() - a.t0
  rec.success = success and true or false
  if err ~= nil then
    rec.error = tostring(err)
  end
  local ok, bytes = pcall(record.encode, rec)
  if not ok then
    error(m .. ": " .. bytes, 2) -- metadata changed since start_cycle into something unstorable
  end
  self._active[id] = nil
  self._nactive = self._nactive - 1
  local ins = self._ins
  ins.active:add(-1)
  if rec.success then
    ins.cycles_ok:inc()
  else
    ins.cycles_failed:inc()
  end
  ins.duration:observe(rec.duration)
  local stored_ok, serr, code = self._history:append(bytes, self.max_history)
  if not stored_ok then
    return nil, m .. ": " .. serr, code
  end
  return rec
end

-- ---- reading the history ------------------------------------------------------

local function decode(bytes, numbers_only)
  local rec, err = record.decode(bytes, numbers_only)
  if not rec then
    error("po.metrics.collector: " .. err, 0)
  end
  return rec
end

--- Calls fn(batch) for every batch of encoded records, oldest first.
local function each_batch(self, fn)
  local after = 0
  while true do
    local batch, last = self._history:scan(after, BATCH)
    if not batch then
      error("po.metrics.collector: " .. tostring(last), 0)
    end
    fn(batch)
    if #batch < BATCH then
      return
    end
    after = last
  end
end

--- Calls fn(rec) for every record, oldest first, reading in batches.
local function each_record(self, numbers_only, fn)
  each_batch(self, function(batch)
    for i = 1, #batch do
      fn(decode(batch[i], numbers_only))
    end
  end)
end

local function decode_numbers(bytes)
  return decode(bytes, true)
end

--- An iterator over the history's records, oldest first:
--- `for rec in col:cycles() do ... end`.
function Collector:cycles()
  local after, batch, i = 0, {}, 1
  local done = false
  return function()
    if i > #batch then
      if done then
        return nil
      end
      local last
      batch, last = self._history:scan(after, BATCH)
      if not batch then
        error("col:cycles: " .. tostring(last), 2)
      end
      after, i = last, 1
      done = #batch < BATCH
      if #batch == 0 then
        return nil
      end
    end
    local rec = decode(batch[i])
    i = i + 1
    return rec
  end
end

--- The n newest records (default 10), oldest first.
---@param n? integer
---@return table[]
function Collector:recent(n)
  n = n or 10
  if type(n) ~= "number" or n < 0 or n ~= floor(n) then
    error("col:recent: n must be a whole number >= 0", 2)
  end
  local out = {}
  if n == 0 then
    return out
  end
  for i, bytes in ipairs(self._history:tail(n)) do
    out[i] = decode(bytes)
  end
  return out
end

--- The number of records in the history.
function Collector:count()
  return self._history:count()
end

--- The ids of the active cycles (in no particular order).
function Collector:active()
  local ids = {}
  for id in pairs(self._active) do
    ids[#ids + 1] = id
  end
  return ids
end

--- The run record: a table, empty when nothing was said of the run (no
--- direction then means "max").
---@return table
function Collector:run()
  local bytes = self._history:get_run()
  local run = bytes and record.decode_value(bytes) or {}
  return type(run) == "table" and run or {}
end

--- Merges fields (a table of plain values: strings, numbers, booleans,
--- tables of those) into the run record and stores it. A direction other
--- than "min" or "max" raises.
---@param fields table
---@return true|nil ok, string? message, string? code
function Collector:set_run(fields)
  local m = "col:set_run"
  if type(fields) ~= "table" then
    error(m .. ": fields must be a table, got " .. type(fields), 2)
  end
  if fields.direction ~= nil and fields.direction ~= "min" and fields.direction ~= "max" then
    error(m .. ": direction must be 'min' or 'max', got " .. tostring(fields.direction), 2)
  end
  local bytes = self._history:get_run()
  local run = bytes and record.decode_value(bytes) or {}
  for k, v in pairs(fields) do
    run[k] = v
  end
  local ok, encoded = pcall(record.encode_value, run, "run")
  if not ok then
    error(m .. ": " .. encoded, 2)
  end
  local stored, err, code = self._history:set_run(encoded)
  if not stored then
    return nil, m .. ": " .. tostring(err), code
  end
  return true
end

--- Empties the history (the store's too, for every process using it) and
--- forgets the active cycles.
function Collector:clear()
  local ok, err, code = self._history:clear()
  if not ok then
    return nil, "col:clear: " .. tostring(err), code
  end
  self._ins.active:add(-self._nactive)
  self._active, self._nactive = {}, 0
  return true
end

--- Closes the store (a collector without path has nothing to close). Safe
--- twice; the collector cannot be used afterwards.
function Collector:close()
  self._history:close()
end

--- Statistics over the history: cycle_stats (successful cycles' durations),
--- cache_stats, validation_stats, overall_stats. Every key is present, with
--- zeros for an empty history.
---@return table
function Collector:statistics()
  local pass = stats.pass()
  each_batch(self, function(batch)
    -- Decoded inside the pass, each record is read and dropped in one
    -- step, which lets LuaJIT skip allocating it.
    pass:add(batch, #batch, decode_numbers)
  end)
  local s = pass:result()
  s.overall_stats.active_cycles = self._nactive
  return s
end

--- Writes the history to path as "json" (one document: exported_at,
--- statistics, cycles), "jsonl" (one record per line) or "csv" (RFC 4180),
--- times in RFC 3339 UTC. Returns true, or nil, message, "EIO".
---@param format "json"|"jsonl"|"csv"
---@param path string
---@return true|nil ok, string? message, string? code
function Collector:export(format, path)
  return require("poengine.metrics.export").write(self, format, path, each_record)
end

return M
