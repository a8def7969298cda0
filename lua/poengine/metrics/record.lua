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
local sub = string.sub
local tostring, error, ipairs = tostring, error, ipairs

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

-- Reads the tagged value at byte offset at (0-based) of the len bytes at p.
-- Returns the value and the offset after it, or nil, nil and a message for
-- a damaged value: no table and no closure per call, and nothing that
-- raises, so that decoding a record needs no pcall.
local read_value

local function read_u32(p, at)
  ffi.copy(num_buf.b, p + at, 4)
  return num_buf.u
end

local function read_table(p, at, len, n, depth)
  if depth > MAX_DEPTH then
    return nil, nil, ("a table is nested deeper than %d levels"):format(MAX_DEPTH)
  end
  local t = {}
  for _ = 1, n do
    local k, v, err
    k, at, err = read_value(p, at, len, depth)
    if not at then
      return nil, nil, err
    end
    v, at, err = read_value(p, at, len, depth)
    if not at then
      return nil, nil, err
    end
    if k == nil then
      return nil, nil, "a table key is nil"
    elseif k ~= k then
      return nil, nil, "a table key is NaN"
    end
    t[k] = v
  end
  return t, at
end

-- depth: how many tables enclose this value (encode_value refuses more than
-- MAX_DEPTH, so a deeper record is damaged).
function read_value(p, at, len, depth)
  if at >= len then
    return nil, nil, "truncated record"
  end
  local tag = p[at]
  at = at + 1
  if tag == 4 then -- the common case first: ids and errors are strings
    if at + 4 > len then
      return nil, nil, "truncated record"
    end
    local n = read_u32(p, at)
    at = at + 4
    if at + n > len then
      return nil, nil, "truncated record"
    end
    return ffi.string(p + at, n), at + n
  elseif tag == 0 then
    return nil, at
  elseif tag == 1 or tag == 2 then
    return tag == 2, at
  elseif tag == 3 then
    if at + 8 > len then
      return nil, nil, "truncated record"
    end
    ffi.copy(num_buf.b, p + at, 8)
    if num_buf.b[7] == 255 and num_buf.b[6] >= 248 then
      return 0 / 0, at + 8 -- see tagged_nan below
    end
    return num_buf.d, at + 8
  elseif tag == 5 then
    if at + 4 > len then
      return nil, nil, "truncated record"
    end
    return read_table(p, at + 4, len, read_u32(p, at), (depth or 0) + 1)
  end
  return nil, nil, ("unknown value tag %d"):format(tag)
end

--- Decodes a value that encode_value wrote, starting at byte offset at
--- (0-based) of s; returns it and the offset after it. Raises on bad input.
function M.decode_value(s, at)
  local v, after, err = read_value(ffi.cast("const uint8_t *", s), at or 0, #s)
  if not after then
    error(err, 0)
  end
  return v, after
end

-- ---- records ---------------------------------------------------------------

-- Copies a record's numeric fields into the header (0 for a missing one),
-- written out once from the field list, as header_fields below is:
--
--   return function(h, r)
--     h.start_time = r.start_time or 0
--     ...
--   end
local fill_header
do
  local lines = { "return function(h, r)" }
  for _, k in ipairs(numeric) do
    lines[#lines + 1] = ("  h.%s = r.%s or 0"):format(k, k)
  end
  lines[#lines + 1] = "end"
  fill_header = assert(load(concat(lines, "\n"), "=record header fill"))()
end

--- Encodes a cycle record table (the fields the collector documents).
--- Raises, naming the field, when the metadata holds something that cannot
--- be stored.
function M.encode(rec)
  local h = header
  h.version = M.VERSION
  h.flags = (rec.success and FLAG_SUCCESS or 0) + (rec.score ~= nil and FLAG_SCORE or 0)
    + (rec.best_score ~= nil and FLAG_BEST or 0)
  fill_header(h, rec)
  h.score = rec.score or 0
  h.best_score = rec.best_score or 0
  local err = rec.error
  if err ~= nil then
    err = tostring(err)
  end
  return ffi.string(h, HEADER) .. M.encode_value(rec.cycle_id, "cycle_id") .. M.encode_value(err, "error")
    .. M.encode_value(rec.metadata, "metadata")
end

-- The header's fields copied into a new record, written out once from the
-- field list (one table constructor with constant keys, instead of a loop
-- reading cdata fields by a dynamic key): the generated function reads
--
--   local band = ...
--   return function(p)
--     local flags = p.flags
--     return { start_time = p.start_time, end_time = p.end_time, ...,
--       success = band(flags, 1) ~= 0,
--       score = band(flags, 2) ~= 0 and p.score or nil,
--       best_score = band(flags, 4) ~= 0 and p.best_score or nil }
--   end
local header_fields
do
  local lines = { "local band = ...", "return function(p)", "  local flags = p.flags", "  return {" }
  for _, k in ipairs(numeric) do
    lines[#lines + 1] = ("    %s = p.%s,"):format(k, k)
  end
  lines[#lines + 1] = ("    success = band(flags, %d) ~= 0,"):format(FLAG_SUCCESS)
  lines[#lines + 1] = ("    score = band(flags, %d) ~= 0 and p.score or nil,"):format(FLAG_SCORE)
  lines[#lines + 1] = ("    best_score = band(flags, %d) ~= 0 and p.best_score or nil,"):format(FLAG_BEST)
  lines[#lines + 1] = "  }"
  lines[#lines + 1] = "end"
  header_fields = assert(load(concat(lines, "\n"), "=record header"))(require("bit").band)
end

-- LuaJIT reads a double whose bits are one of the NaNs it uses as type tags
-- as a value of another type (nil, or an object at a made-up address): a
-- damaged record must not hand one out. Such bits start (little-endian,
-- last two bytes) with 0xFF and 0xF8 or more; the header's doubles that do
-- are rewritten as the plain NaN before the header is read.
-- Whether one of the header's doubles has such bits (the last two bytes of
-- each 8-byte slot after the first). One byte per string.byte call: this
-- runs for every record a dashboard reads, and LuaJIT compiles that where
-- it leaves a pattern search or a byte() of two results to the interpreter.
local function has_tagged_nan(s)
  for at = 16, HEADER, 8 do
    if byte(s, at) == 255 and byte(s, at - 1) >= 248 then
      return true
    end
  end
  return false
end

local function plain_nans(s)
  local parts, from = {}, 1
  for at = 9, HEADER - 7, 8 do
    local b6, b7 = byte(s, at + 6, at + 7)
    if b7 == 255 and b6 >= 248 then
      parts[#parts + 1] = sub(s, from, at - 1) .. f64(0 / 0)
      from = at + 8
    end
  end
  parts[#parts + 1] = sub(s, from)
  return concat(parts)
end

--- Decodes a record. With numbers_only, the id, error and metadata are not
--- read (cheaper, for statistics). Returns the record, or nil and a message
--- for a record this version cannot read.
function M.decode(s, numbers_only)
  local len = #s
  if len < HEADER then
    return nil, "a record of " .. len .. " bytes is too short"
  end
  local version = byte(s, 1)
  if version ~= M.VERSION then
    return nil, ("a record has layout version %d; this poengine reads version %d"):format(version, M.VERSION)
  end
  if has_tagged_nan(s) then
    s = plain_nans(s)
  end
  local rec = header_fields(ffi.cast(header_ptr, s))
  if not numbers_only then
    local p = ffi.cast("const uint8_t *", s)
    local id, err, meta, at, msg
    id, at, msg = read_value(p, HEADER, len)
    if at then
      err, at, msg = read_value(p, at, len)
    end
    if at then
      meta, at, msg = read_value(p, at, len)
    end
    if not at then
      return nil, "a damaged record: " .. msg
    end
    rec.cycle_id, rec.error, rec.metadata = id, err, meta
  end
  return rec
end

return M
