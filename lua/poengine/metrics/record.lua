--- The binary layout of a cycle record (what the collector stores, one
--- record per cycle), version 1:
---
---   a fixed header (struct po_cycle_record_v1 below: a version byte, a flags
---   byte, padding, then 16 doubles in native byte order), followed by three
---   tagged values: the cycle id, the error (nil or a string) and the
---   metadata (nil or a table).
---
--- A tagged value is one byte of tag and then: nothing (0 nil, 1 false,
--- 2 true), 8 bytes of double (3 number), a uint32 length and the bytes
--- (4 string), or a uint32 count of key/value pairs, each two tagged values
--- (5 table). Numbers are native-endian, as LMDB's files are.
---
--- JSON is only an export format (see poengine.metrics.collector).
local ffi = require "ffi"

local byte, concat, type, next = string.byte, table.concat, type, next
local tostring, error, floor = tostring, error, math.floor

local M = {}

M.VERSION = 1

pcall(ffi.cdef, [[
  typedef struct po_cycle_record_v1 {
    uint8_t version;
    uint8_t flags;
    uint8_t pad[6];
    double start_time, end_time, duration;
    double llm_calls, llm_cache_hits, llm_cache_misses;
    double tokens_in, tokens_out, tokens_saved;
    double cost, cost_saved;
    double validation_time, validation_count, file_operations;
    double score, best_score;
  } po_cycle_record_v1;
]])

local header_type = ffi.typeof("po_cycle_record_v1")
local header_ptr = ffi.typeof("const po_cycle_record_v1 *")
local HEADER = ffi.sizeof(header_type)
local header = header_type()

local FLAG_SUCCESS, FLAG_SCORE, FLAG_BEST = 1, 2, 4

--- The numeric fields of a record, in header order.
M.numeric_fields = {
  "start_time", "end_time", "duration",
  "llm_calls", "llm_cache_hits", "llm_cache_misses",
  "tokens_in", "tokens_out", "tokens_saved",
  "cost", "cost_saved",
  "validation_time", "validation_count", "file_operations",
}
local numeric = M.numeric_fields

-- ---- tagged values ---------------------------------------------------------

local num_buf = ffi.new("union { double d; uint32_t u; uint8_t b[8]; }")

local function f64(x)
  num_buf.d = x
  return ffi.string(num_buf.b, 8)
end

local function u32(n)
  num_buf.u = n
  return ffi.string(num_buf.b, 4)
end

local MAX_DEPTH = 64

--- Appends the tagged encoding of v to out; path names v in errors.
local function put(out, v, path, depth, open)
  local t = type(v)
  if v == nil then
    out[#out + 1] = "\0"
  elseif t == "boolean" then
    out[#out + 1] = v and "\2" or "\1"
  elseif t == "number" then
    out[#out + 1] = "\3" .. f64(v)
  elseif t == "string" then
    out[#out + 1] = "\4" .. u32(#v) .. v
  elseif t == "table" then
    if open[v] then
      error(("%s refers to itself"):format(path), 0)
    end
    if depth >= MAX_DEPTH then
      error(("%s is nested deeper than %d levels"):format(path, MAX_DEPTH), 0)
    end
    open[v] = true
    local count, at = 0, #out + 1
    out[at] = "" -- the count, filled in below
    for k, x in next, v do
      local kt = type(k)
      if kt ~= "string" and kt ~= "number" and kt ~= "boolean" then
        error(("%s has a key of type %s"):format(path, kt), 0)
      end
      put(out, k, path, depth + 1, open)
      put(out, x, path .. "." .. tostring(k), depth + 1, open)
      count = count + 1
    end
    out[at] = "\5" .. u32(count)
    open[v] = nil
  else
    error(("%s is a %s (only nil, booleans, numbers, strings and tables are stored)"):format(path, t), 0)
  end
end

--- Encodes a plain value (nil, boolean, number, string, or a table of
--- these, without cycles); raises "<path> is a function ..." otherwise.
function M.encode_value(v, path)
  local out = {}
  put(out, v, path or "value", 0, {})
  return concat(out)
end

local function read_value(r)
  local p, at = r.p, r.at
  if at >= r.len then
    error("truncated record", 0)
  end
  local tag = p[at]
  at = at + 1
  if tag == 0 then
    r.at = at
    return nil
  elseif tag == 1 or tag == 2 then
    r.at = at
    return tag == 2
  elseif tag == 3 then
    if at + 8 > r.len then error("truncated record", 0) end
    ffi.copy(num_buf.b, p + at, 8)
    r.at = at + 8
    return num_buf.d
  elseif tag == 4 or tag == 5 then
    if at + 4 > r.len then error("truncated record", 0) end
    ffi.copy(num_buf.b, p + at, 4)
    local n = num_buf.u
    at = at + 4
    if tag == 4 then
      if at + n > r.len then error("truncated record", 0) end
      r.at = at + n
      return ffi.string(p + at, n)
    end
    r.at = at
    local t = {}
    for _ = 1, n do
      local k = read_value(r)
      local v = read_value(r)
      if k == nil then error("a table key is nil", 0) end
      t[k] = v
    end
    return t
  end
  error(("unknown value tag %d"):format(tag), 0)
end

--- Decodes a value that encode_value wrote, starting at byte offset at
--- (0-based) of s; returns it and the offset after it. Raises on bad input.
function M.decode_value(s, at)
  local r = { p = ffi.cast("const uint8_t *", s), at = at or 0, len = #s, s = s }
  local v = read_value(r)
  return v, r.at
end

-- ---- records ---------------------------------------------------------------

--- Encodes a cycle record table (the fields the collector documents).
--- Raises, naming the field, when the metadata holds something that cannot
--- be stored.
function M.encode(rec)
  local h = header
  h.version = M.VERSION
  h.flags = (rec.success and FLAG_SUCCESS or 0) + (rec.score ~= nil and FLAG_SCORE or 0)
    + (rec.best_score ~= nil and FLAG_BEST or 0)
  for i = 1, #numeric do
    local k = numeric[i]
    h[k] = rec[k] or 0
  end
  h.score = rec.score or 0
  h.best_score = rec.best_score or 0
  local err = rec.error
  if err ~= nil then
    err = tostring(err)
  end
  return ffi.string(h, HEADER) .. M.encode_value(rec.cycle_id, "cycle_id") .. M.encode_value(err, "error")
    .. M.encode_value(rec.metadata, "metadata")
end

--- Decodes a record. With numbers_only, the id, error and metadata are not
--- read (cheaper, for statistics). Returns the record, or nil and a message
--- for a record this version cannot read.
function M.decode(s, numbers_only)
  if #s < HEADER then
    return nil, "a record of " .. #s .. " bytes is too short"
  end
  if byte(s, 1) ~= M.VERSION then
    return nil, ("a record has layout version %d; this poengine reads version %d"):format(byte(s, 1), M.VERSION)
  end
  local h = ffi.cast(header_ptr, s)
  local rec = {}
  for i = 1, #numeric do
    local k = numeric[i]
    rec[k] = h[k]
  end
  local flags = h.flags
  rec.success = flags % 2 == 1
  if floor(flags / FLAG_SCORE) % 2 == 1 then
    rec.score = h.score
  end
  if floor(flags / FLAG_BEST) % 2 == 1 then
    rec.best_score = h.best_score
  end
  if not numbers_only then
    local r = { p = ffi.cast("const uint8_t *", s), at = HEADER, len = #s, s = s }
    local ok, err = pcall(function()
      rec.cycle_id = read_value(r)
      rec.error = read_value(r)
      rec.metadata = read_value(r)
    end)
    if not ok then
      return nil, "a damaged record: " .. tostring(err)
    end
  end
  return rec
end

return M
