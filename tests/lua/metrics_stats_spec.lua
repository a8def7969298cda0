-- poengine.metrics.stats: each figure against a value computed by hand,
-- the empty and one-value cases, and the pass over cycle records on
-- hand-made records (running cycles, non-numbers, NaN) with every total
-- worked out below.
local stats = require "poengine.metrics.stats"

local EPS = 1e-12

describe("poengine.metrics.stats", function()
  it("takes percentiles by nearest rank on the 0-100 scale", function()
    local s = { 1, 2, 3, 4 }
    assert.are.equal(1, stats.percentile(s, 0)) -- rank 0 is clamped to the first
    assert.are.equal(1, stats.percentile(s, 25)) -- ceil(1) = 1
    assert.are.equal(2, stats.percentile(s, 26)) -- ceil(1.04) = 2
    assert.are.equal(2, stats.percentile(s, 50)) -- ceil(2) = 2
    assert.are.equal(3, stats.percentile(s, 75))
    assert.are.equal(4, stats.percentile(s, 90)) -- ceil(3.6) = 4
    assert.are.equal(4, stats.percentile(s, 100))
    local hundred = {}
    for i = 1, 100 do
      hundred[i] = i
    end
    assert.are.equal(99, stats.percentile(hundred, 99))
    assert.are.equal(90, stats.percentile(hundred, 90))
    assert.are.equal(50, stats.percentile(hundred, 50))
    assert.are.equal(0, stats.percentile({}, 50))
  end)

  it("takes the median of odd and even counts, 0 for none", function()
    assert.are.equal(3, stats.median { 1, 3, 7 })
    assert.are.equal(2.5, stats.median { 1, 2, 3, 4 })
    assert.are.equal(5, stats.median { 5 })
    assert.are.equal(0, stats.median {})
  end)

  it("computes the mean and the sample standard deviation", function()
    assert.are.equal(2.5, stats.mean { 4, 1, 3, 2 })
    assert.are.equal(0, stats.mean {})
    -- deviations from 2.5: 1.5, 0.5, 0.5, 1.5; squares sum to 5; 5 / (4 - 1)
    assert.is_near(math.sqrt(5 / 3), stats.sd { 4, 1, 3, 2 }, EPS)
    assert.is_near(math.sqrt(5 / 3), stats.sd({ 4, 1, 3, 2 }, 2.5), EPS)
    assert.are.equal(0, stats.sd { 42 })
    assert.are.equal(0, stats.sd {})
  end)

  it("computes the median absolute deviation", function()
    -- median 2.5; distances 1.5, 0.5, 0.5, 1.5; their median 1
    assert.are.equal(1, stats.mad { 1, 2, 3, 4 })
    -- median 3; distances 2, 0, 4; their median 2
    assert.are.equal(2, stats.mad { 1, 3, 7 })
    assert.are.equal(2, stats.mad({ 1, 3, 7 }, 3))
    assert.are.equal(0, stats.mad { 9 })
    assert.are.equal(0, stats.mad {})
  end)

  it("sorts a copy and leaves the list as it was", function()
    local xs = { 3, 1, 2 }
    assert.are.same({ 1, 2, 3 }, stats.sorted(xs))
    assert.are.same({ 3, 1, 2 }, xs)
    assert.are.same({}, stats.sorted {})
  end)

  it("summarizes a list in one call", function()
    local xs = { 3, 1, 2 }
    local s = stats.summary(xs)
    assert.are.same({ 3, 1, 2 }, xs)
    assert.are.same({ 1, 2, 3 }, s.sorted)
    assert.are.equal(3, s.count)
    assert.are.equal(6, s.sum)
    assert.are.equal(2, s.mean)
    assert.are.equal(2, s.median)
    assert.are.equal(1, s.min)
    assert.are.equal(3, s.max)
    assert.are.equal(1, s.stdev) -- squares 1 + 0 + 1 over 2
    assert.are.equal(3, s.p90) -- ceil(2.7) = 3
    assert.are.equal(3, s.p99)
    assert.are.same({ count = 0, sum = 0, mean = 0, median = 0, min = 0, max = 0, stdev = 0, p90 = 0, p99 = 0 },
      stats.summary {})
  end)

  it("is what the benchmark validator reports: median and MAD, 0 for no samples", function()
    local builtin = require "poengine.validate.builtin"
    local s = builtin.stats { 7, 1, 3 }
    assert.are.same({ median = 3, min = 1, max = 7, mad = 2, n = 3, samples = { 7, 1, 3 } }, s)
    s = builtin.stats {}
    assert.are.same({ median = 0, mad = 0, n = 0, samples = {} }, s)
  end)

  describe("cycles", function()
    local function records()
      return {
        { start_time = 8, end_time = 10, success = true, duration = 2, llm_calls = 4, llm_cache_hits = 1,
          llm_cache_misses = 3, tokens_saved = 150, cost_saved = 0.5, validation_count = 2, validation_time = 3,
          file_operations = 1, tokens_in = 10, tokens_out = 5, cost = 1, score = 5 },
        { start_time = 19, end_time = 20, success = false, duration = 1, llm_calls = 1, llm_cache_hits = 1,
          validation_count = 0, validation_time = 9, file_operations = 2, score = 7, best_score = 9,
          tokens_in = "x" },
        { start_time = 26, end_time = 30, success = true, duration = 4, validation_count = 1, validation_time = 1,
          cost = 0 / 0 },
        { start_time = 40, tokens_in = 7, score = 8 }, -- still running
      }
    end

    it("computes every group from the ended cycles; a running one counts as active", function()
      local s = stats.cycles(records())
      local o = s.overall_stats
      assert.are.same({ total_cycles = 3, successful_cycles = 2, failed_cycles = 1, success_rate = 2 / 3,
        active_cycles = 1, total_file_operations = 3 }, o)
      -- durations of the successful cycles: 2 and 4
      local c = s.cycle_stats
      assert.are.equal(3, c.mean)
      assert.are.equal(3, c.median)
      assert.are.equal(2, c.min)
      assert.are.equal(4, c.max)
      assert.is_near(math.sqrt(2), c.stdev, EPS)
      assert.are.equal(4, c.p90) -- ceil(1.8) = 2
      assert.are.equal(4, c.p99)
      -- 5 calls, 2 hits, 3 misses (the second record has no cache_misses field)
      local k = s.cache_stats
      assert.are.equal(5, k.total_llm_calls)
      assert.are.equal(2, k.cache_hits)
      assert.are.equal(3, k.cache_misses)
      assert.is_near(0.4, k.hit_rate, EPS)
      assert.is_near(40, k.api_reduction, EPS)
      assert.are.equal(150, k.tokens_saved)
      assert.are.equal(0.5, k.cost_saved)
      -- validation times of the cycles that ran validations: 3 and 1
      assert.are.same({ mean_validation_time = 2, median_validation_time = 2, total_validations = 3 },
        s.validation_stats)
    end)

    it("fills the extra figures over every cycle, running ones included", function()
      local extra = {}
      stats.cycles(records(), extra)
      assert.are.same({ 1, 3 }, extra.validation_times)
      -- tokens_in 10 + 0 ("x") + 0 + 7; cost 1 + 0 (NaN); best: 5, 9, -, 8; last scored: the running one
      assert.are.same({ tokens_in = 17, tokens_out = 5, cost = 1, best_score = 9, last_score = 8, first_start = 8,
        last_end = 30 }, extra.totals)
      assert.are.same({ count = 2, time = 6 }, extra.successful)
    end)

    it("gives the same figures folded in batches, decoded on the way, as in one call", function()
      local list = records()
      local whole_extra, batch_extra = {}, {}
      local whole = stats.cycles(list, whole_extra)
      local pass = stats.pass(batch_extra)
      local function decode(i)
        return list[i]
      end
      pass:add({ 1, 2, 99 }, 2, decode) -- n bounds the batch: 99 is never decoded
      pass:add({ 3, 4 }, nil, decode)
      assert.are.same(whole, pass:result())
      assert.are.same(whole_extra, batch_extra)
    end)

    it("gives every key, zeros, for no cycles", function()
      local extra = {}
      local s = stats.cycles({}, extra)
      assert.are.same({ mean = 0, median = 0, min = 0, max = 0, stdev = 0, p90 = 0, p99 = 0 }, s.cycle_stats)
      assert.are.same({ mean_validation_time = 0, median_validation_time = 0, total_validations = 0 },
        s.validation_stats)
      assert.are.equal(0, s.overall_stats.success_rate)
      assert.are.equal(0, s.cache_stats.hit_rate)
      assert.are.same({}, extra.validation_times)
      assert.are.same({ tokens_in = 0, tokens_out = 0, cost = 0 }, extra.totals)
    end)
  end)

  it("better knows the direction", function()
    assert.is_true(stats.better("min", 1, 2))
    assert.is_false(stats.better("min", 2, 1))
    assert.is_true(stats.better("max", 2, 1))
    assert.is_false(stats.better("max", 1, 1))
  end)
end)
