-- poengine.validate.decide: the statistics against hand-computed values,
-- and the sequential rule on real child processes (tests/bench/spin.c)
-- where the answer is certain.
local decide = require "poengine.validate.decide"

describe("decide statistics", function()
  it("upper_tail and z_for are inverse and match the normal table", function()
    assert.is_true(math.abs(decide.upper_tail(1.959964) - 0.025) < 1e-6)
    assert.is_true(math.abs(decide.upper_tail(0) - 0.5) < 1e-7)
    assert.is_true(math.abs(decide.upper_tail(-1) - 0.8413447) < 1e-6)
    assert.is_true(math.abs(decide.z_for(0.05) - 1.6448536) < 1e-5)
    assert.is_true(math.abs(decide.z_for(0.001) - 3.0902323) < 1e-5)
  end)

  it("p_smaller follows the Mann-Whitney normal approximation", function()
    -- x all below y: U = 9, mean 4.5, var 3*3*7/12 = 5.25, z = (9-4.5-0.5)/sqrt(5.25)
    local p = decide.p_smaller({ 1, 2, 3 }, { 4, 5, 6 })
    assert.is_true(math.abs(p - decide.upper_tail(4 / math.sqrt(5.25))) < 1e-12)
    assert.is_true(math.abs(p - 0.04040) < 1e-4)
    -- The other way round: U = 0, z = (0-4.5-0.5)/sqrt(5.25), p near 1.
    local q = decide.p_smaller({ 4, 5, 6 }, { 1, 2, 3 })
    assert.is_true(math.abs(q - decide.upper_tail(-5 / math.sqrt(5.25))) < 1e-12)
    assert.is_true(q > 0.98)
    -- All values tied: no evidence either way.
    assert.are.equal(1, decide.p_smaller({ 2, 2, 2 }, { 2, 2, 2 }))
  end)

  it("p_low is the exact hypergeometric tail of x's share of the fastest runs", function()
    -- Pool of 6, fastest half (K = 3) all x's: 1 split of C(6,3) = 20.
    assert.is_true(math.abs(decide.p_low({ 1, 2, 3 }, { 4, 5, 6 }, 0.5) - 1 / 20) < 1e-12)
    -- Fastest one (K = 1) is x's: P(X >= 1) = 1 - C(3,1)/C(6,1) = 0.5.
    assert.is_true(math.abs(decide.p_low({ 1, 2, 3 }, { 4, 5, 6 }, 1 / 6) - 0.5) < 1e-12)
    -- K = 2 of 8, one of them x's: P(X >= 1) = 1 - C(4,2)/C(8,2) = 1 - 6/28.
    assert.is_true(math.abs(decide.p_low({ 1, 10, 11, 12 }, { 2, 3, 4, 5 }, 0.25) - (1 - 6 / 28)) < 1e-12)
    -- Only the fast runs count: x's slow outliers do not hide its lead
    -- (K = 4 of 20, all x's: C(10,4)/C(20,4)).
    local x, y = {}, {}
    for i = 1, 10 do
      x[i] = i <= 5 and i or 1000 + i
      y[i] = 5.5 + i
    end
    assert.is_true(math.abs(decide.p_low(x, y, 0.2) - 210 / 4845) < 1e-12)
    assert.is_true(decide.p_smaller(x, y) > 0.2) -- the rank test sees no lead
    -- The scan finds the best cut (K = 5, all x's: 252/15504) and pays for
    -- having looked at several, but still sees the lead.
    local scan = decide.p_low(x, y)
    assert.is_true(scan > 252 / 15504 and scan < 0.05, tostring(scan))
    -- Ties count against x: all equal gives p = 1.
    assert.are.equal(1, decide.p_low({ 2, 2, 2, 2 }, { 2, 2, 2, 2 }, 0.5))
  end)

  it("p_low's scan over cuts is the exact chance of so small a minimum", function()
    -- Every split of a small pool, enumerated: the share of splits whose
    -- smallest single-cut p-value over the cuts of LOW_RANGE is at most the
    -- observed one must be the p-value the scan returns.
    local function scan_statistic(xs, ys)
      local N = #xs + #ys
      local lo = math.max(1, math.ceil(decide.LOW_RANGE[1] * N - 1e-9))
      local hi = math.max(lo, math.min(N - 1, math.floor(decide.LOW_RANGE[2] * N + 1e-9)))
      local best = 1
      for k = lo, hi do
        best = math.min(best, decide.p_low(xs, ys, k / N))
      end
      return best
    end
    local function splits(N, m, f, chosen, from)
      if #chosen == m then
        return f(chosen)
      end
      for i = from, N - (m - #chosen) + 1 do
        chosen[#chosen + 1] = i
        splits(N, m, f, chosen, i + 1)
        chosen[#chosen] = nil
      end
    end
    local cases = {
      { { 1, 2, 4, 9, 12 }, { 3, 5, 6, 7, 8, 10, 11, 13 } },
      { { 2, 3, 14 }, { 1, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13 } },
      { { 1, 2, 3, 5, 8, 13, 14 }, { 4, 6, 7, 9, 10, 11, 12 } },
      { { 6, 7, 8 }, { 1, 2, 3, 4, 5 } },
    }
    for _, case in ipairs(cases) do
      local x, y = case[1], case[2]
      local N, m = #x + #y, #x
      local observed = scan_statistic(x, y)
      local hits, total = 0, 0
      splits(N, m, function(chosen)
        local is_x, xs, ys = {}, {}, {}
        for _, i in ipairs(chosen) do is_x[i] = true end
        for i = 1, N do
          if is_x[i] then xs[#xs + 1] = i else ys[#ys + 1] = i end
        end
        total = total + 1
        if scan_statistic(xs, ys) <= observed * (1 + 1e-9) then
          hits = hits + 1
        end
      end, {}, 1)
      local p = decide.p_low(x, y)
      assert.is_true(math.abs(p - hits / total) < 1e-12, ("%g vs %d/%d"):format(p, hits, total))
      assert.is_true(p >= observed)
    end
  end)

  it("low_shift estimates the shift of the fast runs and brackets it", function()
    local x, y = {}, {}
    for i = 1, 30 do
      y[i] = math.log(1 + i / 30)
      x[i] = y[i] - 0.3 -- the same shape, 0.3 lower in log time
    end
    local est, lo, hi = decide.low_shift(x, y, 0.9)
    assert.is_true(math.abs(est + 0.3) < 1e-12)
    assert.is_true(lo < -0.3 and hi > -0.3, ("[%g, %g]"):format(lo, hi))
    assert.is_true(hi < 0, "a clear shift gives an interval that excludes 0")
    -- Samples too small for the level: unbounded on both sides.
    local _, l2, h2 = decide.low_shift({ 1, 2 }, { 1, 2 }, 0.99)
    assert.are.equal(-math.huge, l2)
    assert.are.equal(math.huge, h2)
  end)

  it("compare_samples takes statistic = \"low\" and refuses an unknown one", function()
    local x, y = {}, {}
    for i = 1, 20 do
      x[i] = i <= 10 and 1.0 + i * 1e-3 or 3.0 + i * 1e-3 -- half its runs slowed down by noise
      y[i] = 1.2 + i * 1e-3
    end
    local low = assert(decide.compare_samples(x, y, { statistic = "low", alpha = 0.01 }))
    assert.are.equal("low", low.statistic)
    assert.are.equal("faster", low.verdict)
    assert.is_true(low.speedup > 1.15 and low.speedup < 1.25)
    local rank = assert(decide.compare_samples(x, y, { alpha = 0.01 }))
    assert.are.equal("rank", rank.statistic)
    assert.are_not.equal("faster", rank.verdict)
    assert.has_error(function() decide.compare_samples(x, y, { statistic = "mean" }) end,
      'po.validate.decide: statistic must be "rank" or "low", got mean')
  end)

  it("shift is the Hodges-Lehmann median of pairwise differences", function()
    -- differences of {1,2,3} - {1,2,3}: -2,-1,-1,0,0,0,1,1,2 -> median 0
    local est = decide.shift({ 1, 2, 3 }, { 1, 2, 3 }, 0.5)
    assert.are.equal(0, est)
    local est2, lo, hi = decide.shift({ 11, 12, 13, 14, 15, 16 }, { 1, 2, 3, 4, 5, 6 }, 0.9)
    assert.are.equal(10, est2)
    assert.is_true(lo < 10 and hi > 10 and lo >= 5 and hi <= 15)
    -- Too few samples for the level: an unbounded interval, never a made-up one.
    local _, l3, h3 = decide.shift({ 1, 2 }, { 3, 4 }, 0.999)
    assert.are.equal(-math.huge, l3)
    assert.are.equal(math.huge, h3)
  end)

  it("compare_samples gives the verdict, the speedup and its interval", function()
    local r = assert(decide.compare_samples({ 1.0, 1.01, 0.99, 1.0, 1.02, 0.98 }, { 2.0, 2.02, 1.98, 2.0, 2.04, 1.96 }))
    assert.are.equal("faster", r.verdict)
    assert.is_true(math.abs(r.speedup - 2) < 0.02)
    assert.is_true(r.ci_low <= r.speedup and r.speedup <= r.ci_high)
    local s = assert(decide.compare_samples({ 2.0, 2.02, 1.98, 2.0, 2.04, 1.96 }, { 1.0, 1.01, 0.99, 1.0, 1.02, 0.98 }))
    assert.are.equal("slower", s.verdict)
    assert.is_true(math.abs(s.speedup - 0.5) < 0.01)
    -- A score where higher is better: the larger sample is the better one.
    local h = assert(decide.compare_samples({ 20, 21, 19, 20, 22, 18 }, { 10, 11, 9, 10, 12, 8 }, { higher_is_better = true }))
    assert.are.equal("faster", h.verdict)
    assert.is_true(h.speedup > 1.8)
  end)

  it("needs min_effect: a significant 0.5% gain is not 'faster' at 1%", function()
    local c, b = {}, {}
    for i = 1, 40 do
      c[i] = 0.995 + i * 1e-6
      b[i] = 1.000 + i * 1e-6
    end
    local r = assert(decide.compare_samples(c, b, { min_effect = 0.01 }))
    assert.is_true(r.p < 1e-6)
    assert.are.equal("same", r.verdict)
    assert.are.equal("faster", assert(decide.compare_samples(c, b, { min_effect = 0.001 })).verdict)
  end)

  it("with margin, 'faster' means better by more than min_effect", function()
    -- Runs spread over 10%: a 2% gain is clear, a gain beyond 1% is not.
    -- A 5% gain over tightly spread runs is clear either way.
    local b, small, tb, big = {}, {}, {}, {}
    for i = 1, 30 do
      b[i] = 1 + 0.1 * i / 30
      small[i] = b[i] / 1.02
      tb[i] = 1.000 + i * 1e-5
      big[i] = tb[i] / 1.05
    end
    for _, statistic in ipairs { "rank", "low" } do
      local plain = assert(decide.compare_samples(big, tb, { min_effect = 0.01, statistic = statistic }))
      local tested = assert(decide.compare_samples(big, tb, { min_effect = 0.01, statistic = statistic, margin = true }))
      assert.are.equal("faster", plain.verdict)
      assert.are.equal("faster", tested.verdict)
      assert.is_true(tested.margin)
      assert.is_false(plain.margin)
      -- The margin moves the test, not the estimate or its interval.
      assert.are.equal(plain.speedup, tested.speedup)
      assert.are.equal(plain.ci_low, tested.ci_low)

      local r = assert(decide.compare_samples(small, b, { min_effect = 0.01, statistic = statistic }))
      assert.are.equal("faster", r.verdict)
      local m = assert(decide.compare_samples(small, b, { min_effect = 0.01, statistic = statistic, margin = true }))
      assert.are.equal("same", m.verdict)
      assert.is_true(m.p > 0.05 and m.p > r.p, ("%g vs %g"):format(m.p, r.p))
    end
    -- Scores (higher is better) take the margin the same way round.
    local hb, hc = {}, {}
    for i = 1, 30 do
      hb[i] = 100 * (1 + 0.1 * i / 30)
      hc[i] = hb[i] * 1.02
    end
    assert.are.equal("faster", assert(decide.compare_samples(hc, hb, { higher_is_better = true })).verdict)
    assert.are.equal("same", assert(decide.compare_samples(hc, hb, { higher_is_better = true, margin = true })).verdict)
  end)

  it("sequential passes margin on to every look", function()
    -- Runs spread over 10% in a fixed pseudo-random order; the candidate is
    -- 3% faster: plainly "faster" at min_effect 1%, but not by a clear
    -- margin of 2.5%.
    local k = 0
    local function run(arm)
      k = k + 1
      return (arm == 1 and 1 / 1.03 or 1) * (1 + 0.1 * ((k * 7919) % 101) / 101)
    end
    local plain = assert(decide.sequential(1, run, { min_effect = 0.01 }))
    assert.are.equal("faster", plain.candidates[1].verdict)
    k = 0
    local tested = assert(decide.sequential(1, run, { min_effect = 0.025, margin = true }))
    assert.are.equal("same", tested.candidates[1].verdict)
    assert.is_true(tested.candidates[1].margin)
    k = 0
    local unmargined = assert(decide.sequential(1, run, { min_effect = 0.025 }))
    assert.are.equal(plain.candidates[1].verdict, unmargined.candidates[1].verdict)
  end)

  it("refuses bad input", function()
    local r, err, code = decide.compare_samples({ 1 }, { 1, 2 })
    assert.is_nil(r)
    assert.are.equal("EINVAL", code)
    assert.matches("at least 2", err)
    r, err, code = decide.compare_samples({ 1, -1 }, { 1, 2 })
    assert.is_nil(r)
    assert.are.equal("EINVAL", code)
    assert.matches("candidate sample 2", err)
    assert.has_error(function() decide.compare_samples({ 1, 2 }, { 1, 2 }, { alpha = 2 }) end,
      "po.validate.decide: alpha must be a number in (0, 0.5)")
    assert.has_error(function() decide.sequential(0, function() return 1 end) end,
      "po.validate.decide.sequential: n_candidates must be a positive integer")
  end)

  it("spending gives each look its share of alpha, most of it late", function()
    local looks = decide.looks(6, 45)
    assert.are.same({ 6, 9, 14, 21, 32, 45 }, looks)
    local shares = decide.spending(looks, 45, 0.05, 3)
    local sum = 0
    for k, a in ipairs(shares) do
      sum = sum + a
      if k > 1 then
        assert.is_true(a > shares[k - 1]) -- later looks get more
      end
    end
    assert.is_true(math.abs(sum - 0.05) < 1e-15)
    assert.is_true(math.abs(shares[1] - 0.05 * (6 / 45) ^ 3) < 1e-15)
    assert.is_true(math.abs(shares[2] - 0.05 * ((9 / 45) ^ 3 - (6 / 45) ^ 3)) < 1e-15)
    -- rho = 1 spends by runs: each look in proportion to the runs it adds.
    local even = decide.spending({ 10, 20, 30 }, 30, 0.03, 1)
    for k = 1, 3 do
      assert.is_true(math.abs(even[k] - 0.01) < 1e-15)
    end
    assert.has_error(function() decide.spending(looks, 45, 0.05, 0) end,
      "po.validate.decide: spending must be a positive number, got 0")
  end)

  it("looks grow by half up to the cap", function()
    assert.are.same({ 6, 9, 14, 21, 30 }, decide.looks(6, 30))
    assert.are.same({ 5 }, decide.looks(5, 5))
  end)
end)

describe("decide.sequential", function()
  it("interleaves arms in a seeded order and stops clear cases early", function()
    -- Deterministic arms: candidate 1 is twice as fast, 2 twice as slow,
    -- 3 the same as the baseline (tiny jitter so ranks are not all tied).
    local k = 0
    local level = { [0] = 1.0, 0.5, 2.0, 1.0 }
    local function run(arm)
      k = k + 1
      local t = level[arm]
      return t * (1 + ((k * 7919) % 13) * 1e-4)
    end
    local res = assert(decide.sequential(3, run, { seed = 42 }))
    assert.are.equal("faster", res.candidates[1].verdict)
    assert.are.equal("clear", res.candidates[1].stopped)
    -- Decided at the second look: at 6 runs even a total separation (p
    -- 0.0025) cannot pass the first look's share of alpha (about 1.2e-4),
    -- at 9 runs it gives 2e-4 against a share of 2.8e-4 (the others have
    -- stopped by then, so Holm divides it by one).
    assert.are.equal(9, res.candidates[1].runs)
    assert.are.equal("slower", res.candidates[2].verdict)
    assert.are.equal("same", res.candidates[3].verdict)
    -- The same seed gives the same order; another seed another.
    k = 0
    local again = assert(decide.sequential(3, run, { seed = 42 }))
    assert.are.same(res.order, again.order)
    k = 0
    local other = assert(decide.sequential(3, run, { seed = 43 }))
    assert.are_not.same(res.order, other.order)
  end)

  it("passes a failed run on as nil, message, code", function()
    local res, err, code = decide.sequential(1, function(arm)
      if arm == 1 then
        return nil, "exited with 3", "EFAILED"
      end
      return 1
    end)
    assert.is_nil(res)
    assert.are.equal("exited with 3", err)
    assert.are.equal("EFAILED", code)
  end)

  -- The calibration harness in short form, on real processes.
  local spin = (os.getenv("POENGINE_BUILD_DIR") or "build") .. "/tests/bench_spin"

  -- The child's own CPU seconds for its loop (what spin prints): wall time
  -- on a machine busy with other work would test the load, not the rule.
  local function timed(work)
    local r = po.run_sync { argv = { spin, tostring(work) } }
    assert(r.status == "ok", tostring(r.error or r.stderr))
    return assert(tonumber(r.stdout), "bench_spin printed no CPU time")
  end

  it("never calls an identical binary faster", function()
    -- alpha is the chance that a call accepts an identical candidate all
    -- the same (measured: 1 call in 300 at alpha 0.01, on CPU times); at
    -- 0.001 this test fails by the rule's own error rate once in thousands.
    for seed = 1, 2 do
      local res = assert(decide.sequential(4, function() return timed(2000) end,
        { alpha = 0.001, min_effect = 0.01, seed = seed }))
      for i = 1, 4 do
        assert.are_not.equal("faster", res.candidates[i].verdict)
      end
    end
  end)

  it("always calls a 2x faster binary faster", function()
    for seed = 1, 2 do
      local res = assert(decide.sequential(1, function(arm) return timed(arm == 1 and 1500 or 3000) end,
        { alpha = 0.01, min_effect = 0.01, seed = seed }))
      assert.are.equal("faster", res.candidates[1].verdict)
      assert.is_true(res.candidates[1].speedup > 1.3)
    end
  end)
end)
