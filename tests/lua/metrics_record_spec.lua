-- The collector's binary cycle record (poengine.metrics.record): a record
-- reads back as it was written, numbers_only leaves out the id, error and
-- metadata, and a damaged record gives nil and a message (never raises).
local record = require "poengine.metrics.record"
local ffi = require "ffi"

local HEADER = ffi.sizeof("po_cycle_record_v1")

local function full()
  return {
    cycle_id = "cycle-0001",
    start_time = 1767225600.25,
    end_time = 1767225610.5,
    duration = 10.25,
    llm_calls = 5,
    llm_cache_hits = 2,
    llm_cache_misses = 3,
    tokens_in = 1200,
    tokens_out = 300,
    tokens_saved = 800,
    cost = 0.0125,
    cost_saved = 0.004,
    validation_time = 7.5,
    validation_count = 4,
    file_operations = 6,
    success = false,
    error = "tests failed: 3 of 412",
    score = 0.8125,
    best_score = 0.875,
    metadata = { strategy = "inline", temperature = 0.2, flags = { true, false, "x" }, nested = { deep = { 1 } } },
  }
end

-- A tagged string value.
local function str(s)
  return "\4" .. ffi.string(ffi.new("uint32_t[1]", #s), 4) .. s
end

describe("poengine.metrics.record", function()
  it("reads back every field of a record", function()
    local rec = full()
    assert.are.same(rec, assert(record.decode(record.encode(rec))))
  end)

  it("keeps score and best_score absent when they were, and reads a success", function()
    local rec = full()
    rec.score, rec.best_score, rec.error, rec.metadata, rec.success = nil, nil, nil, nil, true
    rec.cycle_id = 42
    local back = assert(record.decode(record.encode(rec)))
    assert.are.same(rec, back)
    assert.is_nil(back.score)
    assert.is_nil(back.best_score)
    rec.score = 0.5
    back = assert(record.decode(record.encode(rec)))
    assert.are.equal(0.5, back.score)
    assert.is_nil(back.best_score)
  end)

  it("writes a missing numeric field as 0", function()
    local rec = full()
    rec.tokens_saved, rec.file_operations, rec.start_time = nil, nil, nil
    local back = assert(record.decode(record.encode(rec)))
    assert.are.equal(0, back.tokens_saved)
    assert.are.equal(0, back.file_operations)
    assert.are.equal(0, back.start_time)
    assert.are.equal(rec.duration, back.duration)
  end)

  it("reads only the numbers with numbers_only", function()
    local rec = full()
    local back = assert(record.decode(record.encode(rec), true))
    assert.is_nil(back.cycle_id)
    assert.is_nil(back.error)
    assert.is_nil(back.metadata)
    for _, k in ipairs(record.numeric_fields) do
      assert.are.equal(rec[k], back[k])
    end
    assert.are.equal(false, back.success)
    assert.are.equal(rec.score, back.score)
    assert.are.equal(rec.best_score, back.best_score)
  end)

  it("decodes a value at an offset and gives the offset after it", function()
    local s = "ab" .. record.encode_value({ k = { 1, 2, true }, s = "x" }) .. "tail"
    local v, after = record.decode_value(s, 2)
    assert.are.same({ k = { 1, 2, true }, s = "x" }, v)
    assert.are.equal("tail", s:sub(after + 1))
    assert.has_error(function()
      record.decode_value("\9", 0)
    end, "unknown value tag 9")
  end)

  it("gives nil and a message for a damaged record, cut anywhere", function()
    local s = record.encode(full())
    for cut = 0, #s - 1 do
      local rec, err = record.decode(s:sub(1, cut))
      assert.is_nil(rec)
      if cut < HEADER then
        assert.are.equal("a record of " .. cut .. " bytes is too short", err)
      else
        assert.are.equal("a damaged record: truncated record", err)
      end
    end
    -- The numbers alone are still readable from a record cut after its header.
    assert.truthy(record.decode(s:sub(1, HEADER), true))
  end)

  it("refuses an unknown tag, a nil or NaN key and a table nested too deep", function()
    local head = record.encode(full()):sub(1, HEADER)
    local function tail(meta)
      return head .. str("id") .. "\0" .. meta
    end
    local u32 = function(n)
      return ffi.string(ffi.new("uint32_t[1]", n), 4)
    end
    local nan = ffi.string(ffi.new("double[1]", 0 / 0), 8)
    local cases = {
      { tail("\7"), "a damaged record: unknown value tag 7" },
      { tail("\5" .. u32(1) .. "\0" .. "\2"), "a damaged record: a table key is nil" },
      { tail("\5" .. u32(1) .. "\3" .. nan .. "\2"), "a damaged record: a table key is NaN" },
      { tail(("\5" .. u32(1) .. "\2"):rep(65) .. "\0"), "a damaged record: a table is nested deeper than 64 levels" },
    }
    for _, c in ipairs(cases) do
      local rec, err = record.decode(c[1])
      assert.is_nil(rec)
      assert.are.equal(c[2], err)
    end
    -- 64 levels, what encode_value allows, read back.
    local deep = {}
    local t = deep
    for _ = 2, 64 do
      t[1] = {}
      t = t[1]
    end
    local rec = full()
    rec.metadata = deep
    assert.are.same(deep, assert(record.decode(record.encode(rec))).metadata)
  end)

  it("refuses another layout version", function()
    local s = "\2" .. record.encode(full()):sub(2)
    local rec, err = record.decode(s)
    assert.is_nil(rec)
    assert.are.equal("a record has layout version 2; this poengine reads version 1", err)
  end)
end)
