-- po.metrics' edges: the cycle record's refusals (nesting, key types) and
-- a damaged record whose header holds LuaJIT's tag NaNs (read as a plain
-- NaN, never as another type); infinite and NaN samples in every exposition
-- format; the collector's tuple scores, a call recorded with no fields, and
-- its argument checks.
local po = require "poengine"
local record = require "poengine.metrics.record"
local ffi = require "ffi"

local function raised(fn, ...)
  local ok, err = pcall(fn, ...)
  assert.is_false(ok, "expected an error")
  return (tostring(err):gsub("^[^:]*:%d+: ", ""))
end

describe("the cycle record", function()
  it("refuses a value nested deeper than 64 levels, and keys of other types, naming the path", function()
    local function nested(levels)
      local top = {}
      local t = top
      for _ = 2, levels do
        t.n = {}
        t = t.n
      end
      return top
    end
    assert.is_string(record.encode_value(nested(64), "metadata"))
    assert.are.equal("metadata" .. (".n"):rep(64) .. " is nested deeper than 64 levels",
      raised(record.encode_value, nested(65), "metadata"))
    assert.are.equal("metadata.x has a key of type table",
      raised(record.encode_value, { x = { [{}] = 1 } }, "metadata"))
  end)

  it("reads a header double holding a tag NaN as a plain NaN, and the other fields as they were", function()
    local rec = { cycle_id = "c1", start_time = 100, end_time = 103, duration = 3, llm_calls = 2, llm_cache_hits = 1,
      llm_cache_misses = 1, tokens_in = 10, tokens_out = 5, tokens_saved = 0, cost = 0.5, cost_saved = 0,
      validation_time = 1, validation_count = 1, file_operations = 0, success = true, score = 0.25, best_score = 0.5 }
    local bytes = record.encode(rec)
    -- The header: 8 bytes, then the doubles in numeric_fields order;
    -- end_time is the second: bytes 17..24. All ones is a NaN LuaJIT uses
    -- as a type tag.
    local damaged = bytes:sub(1, 16) .. ("\255"):rep(8) .. bytes:sub(25)
    local back = assert(record.decode(damaged))
    assert.are.equal("number", type(back.end_time))
    assert.is_true(back.end_time ~= back.end_time)
    back.end_time = rec.end_time
    assert.are.same(rec, back)
    assert.are.equal(ffi.sizeof("po_cycle_record_v1"), 8 + 8 * 16)
  end)
end)

describe("po.metrics.expose with samples that are not finite", function()
  it("writes +Inf, -Inf and NaN in the text formats, and as strings in JSON", function()
    local up = po.metrics.gauge("more_spec_up")
    local down = po.metrics.gauge("more_spec_down")
    local undefined = po.metrics.gauge("more_spec_undefined")
    up:set(math.huge)
    down:set(-math.huge)
    undefined:set(math.huge)
    undefined:add(-math.huge) -- inf - inf
    for _, format in ipairs { "prometheus", "openmetrics" } do
      local text = po.metrics.expose(format)
      assert.truthy(text:find("\nmore_spec_up +Inf\n", 1, true), format)
      assert.truthy(text:find("\nmore_spec_down -Inf\n", 1, true), format)
      assert.truthy(text:find("\nmore_spec_undefined NaN\n", 1, true), format)
    end
    local doc = assert(po.json.decode(po.metrics.expose("json")))
    local values = {}
    for _, m in ipairs(doc.metrics) do
      if m.name:match("^more_spec_") then
        values[m.name] = m.samples[1].value
      end
    end
    assert.are.same({ more_spec_up = "+Inf", more_spec_down = "-Inf", more_spec_undefined = "NaN" }, values)
  end)
end)

describe("the cycle collector", function()
  it("keeps tuple scores whole in the metadata, their first components as score and best_score", function()
    local col = po.metrics.collector()
    col:start_cycle("t", { strategy = "s" })
    assert.is_true(col:record_score("t", { 0.5, 3 }, { 0.75, 2 }))
    local rec = assert(col:end_cycle("t", true))
    assert.are.same({ 0.5, 0.75 }, { rec.score, rec.best_score })
    assert.are.same({ strategy = "s", score = { 0.5, 3 }, best_score = { 0.75, 2 } }, rec.metadata)
  end)

  it("counts a call recorded with no fields as one call, a miss", function()
    local col = po.metrics.collector()
    col:start_cycle(1)
    assert.is_true(col:record_llm_call(1))
    local rec = assert(col:end_cycle(1, true))
    assert.are.same({ 1, 0, 1 }, { rec.llm_calls, rec.llm_cache_hits, rec.llm_cache_misses })
  end)

  it("refuses fields that are not a table, or that hold what a record cannot", function()
    local col = po.metrics.collector()
    col:start_cycle(1)
    assert.are.equal("col:annotate: fields.fn is a function (only nil, booleans, numbers, strings and tables are stored)",
      raised(col.annotate, col, 1, { fn = print }))
    assert.are.equal("col:set_run: fields must be a table, got string", raised(col.set_run, col, "min"))
  end)
end)
