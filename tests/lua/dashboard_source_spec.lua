-- Dashboard sources: statistics computed on first read (the csv format
-- never reads them), and the figures one statistics pass leaves in the
-- memo equal to what each function computes on its own.
local po = require "poengine"
local source = require "poengine.dashboard.source"
local sample = require "tests.tools.sample_run"

-- A run with the awkward records: running cycles, missing and non-finite
-- figures, scores only on some cycles.
local function awkward()
  local list = sample(60)
  list[3].score, list[3].best_score = nil, nil
  list[4].best_score = 0 / 0
  list[5].duration = math.huge
  list[6].duration = 0 / 0
  list[7].start_time, list[7].end_time = nil, 0 / 0
  list[8].tokens_in, list[8].cost = nil, 0 / 0
  list[9].score = -math.huge
  list[10].best_score = false
  local running = list[11]
  running.end_time, running.success, running.duration = nil, nil, nil
  list[60].end_time, list[60].success = nil, nil
  list[60].validation_count = 3
  list[60].score = math.huge
  return list
end

describe("po.dashboard sources", function()
  it("computes a list's statistics on first read, once", function()
    local list = sample(20)
    local src = assert(source.load(list, "cycles"))
    assert.is_nil(rawget(src, "statistics"))
    local stats = src.statistics
    assert.are.same(source.statistics(list), stats)
    assert.are.equal(stats, rawget(src, "statistics"))
    assert.are.equal(stats, src.statistics)
    -- Given statistics are used as they are.
    local given = assert(source.load({ cycles = list, statistics = { overall_stats = { total_cycles = 7 } } },
      "cycles"))
    assert.are.equal(7, rawget(given, "statistics").overall_stats.total_cycles)
  end)

  it("renders csv without computing the statistics", function()
    local csv
    for _, f in ipairs(require("poengine.dashboard.formats").list) do
      if f.name == "csv" then
        csv = f.render
      end
    end
    local seen
    po.dashboard.format {
      name = "test-csv-probe",
      render = function(d, data)
        local out = csv(d, data)
        seen = rawget(data.source, "statistics")
        return out
      end,
    }
    local d = po.dashboard.new(sample(30))
    assert.are.equal(d:render("csv"), d:render("test-csv-probe"))
    assert.is_nil(seen)
  end)

  it("leaves in the memo what each figure's own pass computes", function()
    for _, list in ipairs { awkward(), sample(1), {} } do
      local src = assert(source.load(list, "cycles"))
      local totals = source.totals(src)
      local n, time = source.successful(src)
      local times = source.validation_times(src)
      -- The same figures, each from its own pass over the cycles.
      local bare = { cycles = list, memo = {}, statistics = source.statistics(list) }
      assert.are.same(source.totals(bare), totals)
      local bn, btime = source.successful(bare)
      assert.are.equal(bn, n)
      assert.are.equal(btime, time)
      -- validation_times: from the statistics' pass, ended cycles only.
      local ended = {}
      for _, r in ipairs(list) do
        if not (r.end_time == nil and r.success == nil) and (r.validation_count or 0) > 0 then
          ended[#ended + 1] = r.validation_time
        end
      end
      table.sort(ended)
      assert.are.same(ended, times)
    end
  end)

  it("reads a collector's active cycles when it loads", function()
    local col = po.metrics.collector { name = "source-spec" }
    col:start_cycle("a")
    col:start_cycle("b")
    col:end_cycle("b", true)
    local src = assert(source.load(col, "collector"))
    col:end_cycle("a", true)
    assert.are.equal(1, src.statistics.overall_stats.active_cycles)
    assert.are.equal(1, src.statistics.overall_stats.total_cycles)
  end)
end)
