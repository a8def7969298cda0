--- Deciding whether candidates are faster than a baseline, with stated error
--- rates.
---
--- The comparison is on log times, so "5% faster" means the same thing for a
--- 2 ms and a 2 s benchmark. Two tests, both distribution-free:
---
--- * "rank" (compare_samples' default): the speedup estimate is exp of minus
---   the Hodges–Lehmann shift (the median of all pairwise differences of log
---   times); its confidence interval and the one-sided p-value come from the
---   Mann–Whitney U statistic (normal approximation with a continuity
---   correction and a tie correction). It weighs every run alike.
--- * "low" (the sequential design's default): the p-value is exact — for
---   each cut K from 8% to 40% of the pooled runs, how many of the fastest K
---   are the candidate's (hypergeometric under no difference); the smallest
---   of those p-values is referred to its own exact distribution, so
---   scanning the cuts costs no false accepts — and the speedup is the
---   ratio of the two samples' 20th percentiles, its interval found by
---   inverting the test. Another process on the machine only ever slows a
---   run down, so the fast runs carry the least of its noise: under load
---   this tells a 5% gain apart in far fewer runs (docs/benchmarks.md, the
---   calibration benchmark).
---
--- A candidate is "faster" when its p-value passes the cycle's error budget
--- and its estimated speedup is at least 1 + min_effect. The budget `alpha`
--- is the family-wise false-accept rate of one decision over all candidates:
--- Holm's step-down across candidates, and, because the sequential design
--- looks at the data several times, a share of alpha for each look (the
--- shares sum to alpha, so the union bound holds whichever test a look
--- uses; M.spending keeps most of it for the later looks, where close cases
--- are decided). Stopping early for a candidate that cannot reach
--- min_effect never raises the false-accept rate, so it is done at a looser
--- level (`futility`), which saves most of the runs of hopeless candidates.
--- "Slower" accepts nothing and spends no budget; it is always the rank
--- test's verdict (the middle of the samples, where a slowdown shows).
---
--- Pure Lua, no engine calls: the optimizer, po.validate.compare and the
--- calibration benchmark share it.
local M = {}

--- The default false-accept rates: of one comparison (compare_samples),
--- and family-wise of one sequential decision over a cycle's candidates.
M.ALPHA_ONE, M.ALPHA = 0.05, 0.05

--- The sequential design's defaults (see M.sequential for how they were
--- chosen).
M.MAX_RUNS, M.FUTILITY, M.SPENDING = 40, 0.45, 3
--- The sequential design's test: "low" (M.p_low, on the fastest runs) or
--- "rank" (Mann–Whitney, on all of them). With "low", the looks before
--- M.LOW_FROM runs use the rank test: the fastest runs of a pool of 12 or
--- 18 are too few to decide anything, while a total separation
--- (a 2x faster candidate) passes the rank test at 9 runs.
M.STATISTIC, M.LOW_FROM = "low", 14

local exp, log, sqrt, floor, max, min, abs = math.exp, math.log, math.sqrt, math.floor, math.max, math.min, math.abs
local sort = table.sort

-- erfc by the classic Chebyshev fit (fractional error below 1.2e-7
-- everywhere), ample for p-values compared with thresholds near 1e-3.
local function erfc(x)
  local z = abs(x)
  local t = 1 / (1 + 0.5 * z)
  local r = t * exp(-z * z - 1.26551223 + t * (1.00002368 + t * (0.37409196 + t * (0.09678418
    + t * (-0.18628806 + t * (0.27886807 + t * (-1.13520398 + t * (1.48851587
    + t * (-0.82215223 + t * 0.17087277)))))))))
  return x >= 0 and r or 2 - r
end

--- P(Z > z) for a standard normal Z.
---@param z number
---@return number
function M.upper_tail(z)
  return 0.5 * erfc(z / sqrt(2))
end

--- The z with P(Z > z) = p, for 0 < p < 1 (bisection on upper_tail: called
--- a few times per decision, so exactness beats speed here).
---@param p number
---@return number
function M.z_for(p)
  local lo, hi = -40, 40
  for _ = 1, 100 do
    local mid = (lo + hi) / 2
    if M.upper_tail(mid) > p then
      lo = mid
    else
      hi = mid
    end
  end
  return (lo + hi) / 2
end

local function logs(xs)
  local out = {}
  for i = 1, #xs do
    local x = xs[i]
    if type(x) ~= "number" or x <= 0 or x ~= x then
      return nil, "sample " .. i .. " is not a positive number"
    end
    out[i] = log(x)
  end
  return out
end

-- Mann–Whitney for "x tends to be smaller than y": U counts the pairs with
-- x < y (ties as one half). Returns U, its null mean and its null standard
-- deviation with the tie correction.
local function mann_whitney(x, y)
  local m, n = #x, #y
  local all = {}
  for i = 1, m do
    all[i] = { x[i], 1 }
  end
  for j = 1, n do
    all[m + j] = { y[j], 2 }
  end
  sort(all, function(a, b) return a[1] < b[1] end)
  -- Rank sum of x with mid-ranks for ties, and the tie term sum(t^3 - t).
  local N = m + n
  local rank_x, ties = 0, 0
  local i = 1
  while i <= N do
    local j = i
    while j < N and all[j + 1][1] == all[i][1] do
      j = j + 1
    end
    local mid_rank = (i + j) / 2
    local t = j - i + 1
    ties = ties + (t * t * t - t)
    for k = i, j do
      if all[k][2] == 1 then
        rank_x = rank_x + mid_rank
      end
    end
    i = j + 1
  end
  -- U_x counts pairs with x > y; the pairs with x < y are mn - U_x.
  local u_greater = rank_x - m * (m + 1) / 2
  local u = m * n - u_greater
  local mean = m * n / 2
  local var = m * n / 12 * ((N + 1) - ties / (N * (N - 1)))
  return u, mean, sqrt(max(var, 0))
end

--- One-sided Mann–Whitney p-value that the x sample tends to be smaller
--- than the y sample (normal approximation, continuity corrected).
---@param x number[]
---@param y number[]
---@return number p
function M.p_smaller(x, y)
  local u, mean, sd = mann_whitney(x, y)
  if sd == 0 then
    return u > mean and 0 or 1
  end
  return M.upper_tail((u - mean - 0.5) / sd)
end

-- Sorted pairwise differences x_i - y_j.
local function differences(x, y)
  local d, k = {}, 0
  for i = 1, #x do
    local xi = x[i]
    for j = 1, #y do
      k = k + 1
      d[k] = xi - y[j]
    end
  end
  sort(d)
  return d
end

local function median_sorted(s)
  local n = #s
  if n == 0 then
    return 0
  end
  if n % 2 == 1 then
    return s[(n + 1) / 2]
  end
  return (s[n / 2] + s[n / 2 + 1]) / 2
end

--- Hodges–Lehmann shift of x relative to y and its two-sided confidence
--- interval at the given level (the distribution-free interval: order
--- statistics of the pairwise differences, cut by the U distribution).
--- Returns the estimate, the lower and upper bounds (-inf/inf when the
--- samples are too small for that level).
---@param x number[]
---@param y number[]
---@param level number  e.g. 0.95
function M.shift(x, y, level)
  local d = differences(x, y)
  local mn = #d
  local est = median_sorted(d)
  local m, n = #x, #y
  local z = M.z_for((1 - level) / 2)
  local c = floor(mn / 2 - z * sqrt(m * n * (m + n + 1) / 12))
  if c < 1 then
    return est, -math.huge, math.huge
  end
  return est, d[c], d[mn + 1 - c]
end

-- log(k!) for k up to the largest pooled sample seen, grown on demand.
local log_fact = { [0] = 0 }
local function lfact(k)
  for i = #log_fact + 1, k do
    log_fact[i] = log_fact[i - 1] + log(i)
  end
  return log_fact[k]
end

local function lchoose(n, k)
  return lfact(n) - lfact(k) - lfact(n - k)
end

--- The fraction of the pooled runs whose quantile gives the speedup
--- estimate of the "low" statistic, and the single cut p_low uses when it
--- is given one.
M.LOW_FRACTION = 0.2
--- The cuts the "low" statistic scans: every K from LOW_RANGE[1]·N up to
--- LOW_RANGE[2]·N of the N pooled runs. How many runs a burst of load
--- leaves undisturbed varies from minute to minute; a fixed cut is too wide
--- when few are (the slowed runs of both sides dilute the count) and too
--- narrow when many are. Replayed over the calibration benchmark's eleven
--- recordings, the sequential design with the scan met the power goal at a
--- 5% gain on nine (with the fastest fifth alone, seven), in 15–25% fewer
--- timing seconds, at the same false-accept rate (docs/benchmarks.md).
M.LOW_RANGE = { 0.08, 0.4 }

-- P(X >= c) for c = 0 .. min(k, m), X the number of x's among k draws from
-- a pool of m x's and n y's (hypergeometric), as an array indexed c + 1.
-- Cached for the last pool shape, which the interval search and a
-- sequential look ask for over and over.
local tails_for = { m = -1, n = -1, k = {} }
local function hyper_tails(m, n, k)
  if tails_for.m ~= m or tails_for.n ~= n then
    tails_for = { m = m, n = n, k = {} }
  end
  local t = tails_for.k[k]
  if t then
    return t
  end
  t = {}
  local total = lchoose(m + n, k)
  local top = min(k, m)
  local acc = 0
  for c = top, 0, -1 do
    if k - c <= n then
      acc = acc + exp(lchoose(m, c) + lchoose(n, k - c) - total)
    end
    t[c + 1] = min(acc, 1)
  end
  t[1] = 1 -- P(X >= 0): the whole distribution, not a sum that falls short
  tails_for.k[k] = t
  return t
end

-- x's runs among the fastest 1..N of the pool, ties counting against x.
local function prefix_counts(x, y)
  local m, n = #x, #y
  local all = {}
  for i = 1, m do
    all[i] = { x[i], 1 }
  end
  for j = 1, n do
    all[m + j] = { y[j], 0 }
  end
  sort(all, function(a, b)
    if a[1] ~= b[1] then
      return a[1] < b[1]
    end
    return a[2] < b[2] -- on a tie y's run comes first
  end)
  local counts, hits = {}, 0
  for i = 1, m + n do
    hits = hits + all[i][2]
    counts[i] = hits
  end
  return counts
end

local function cuts(N)
  local lo = max(1, math.ceil(M.LOW_RANGE[1] * N - 1e-9))
  local hi = max(lo, min(N - 1, floor(M.LOW_RANGE[2] * N + 1e-9)))
  return lo, hi
end

-- The probability, with no difference between x and y (every order of the
-- pool equally likely), that some cut K in [lo, hi] has at least need[K]
-- x's among its fastest K: a walk through the sorted pool that draws x's
-- and y's without replacement, absorbed when it crosses a bar.
local function crossing_probability(m, n, lo, hi, need)
  local N = m + n
  local ways = { [0] = 1 } -- probability of j x's so far, not yet absorbed
  local crossed = 0
  for pos = 1, hi do
    local nxt = {}
    local left = N - pos + 1
    for j = 0, min(pos - 1, m) do
      local w = ways[j]
      if w and w > 0 then
        local px = (m - j) / left
        if px > 0 then
          nxt[j + 1] = (nxt[j + 1] or 0) + w * px
        end
        if px < 1 then
          nxt[j] = (nxt[j] or 0) + w * (1 - px)
        end
      end
    end
    if pos >= lo and need[pos] then
      for j = need[pos], min(pos, m) do
        local w = nxt[j]
        if w then
          crossed = crossed + w
          nxt[j] = nil
        end
      end
    end
    ways = nxt
  end
  return min(crossed, 1)
end

--- One-sided p-value that the x sample's fast runs are faster than the y
--- sample's. Pool both and sort; for a cut K, count how many of the
--- fastest K are x's: with no difference every split of the pool is
--- equally likely, so the count is hypergeometric. Given `q`, the test is
--- that one cut, K = round(q·N). Without it the test scans every cut of
--- M.LOW_RANGE and takes the smallest of their p-values, and the p-value
--- returned is the exact probability of a minimum that small when x and y
--- do not differ (a walk over the sorted pool, so the scan's many looks
--- cost nothing in false accepts). Either way the p-value is exact,
--- whatever the timings' distribution. Another process only ever slows a
--- run down, so the fastest runs carry the least of its noise. Ties count
--- against x.
---@param x number[]
---@param y number[]
---@param q? number
---@return number p
function M.p_low(x, y, q)
  local m, n = #x, #y
  local N = m + n
  local counts = prefix_counts(x, y)
  if q then
    local k = max(1, min(N - 1, floor(q * N + 0.5)))
    return hyper_tails(m, n, k)[counts[k] + 1]
  end
  local lo, hi = cuts(N)
  local best = 1
  for k = lo, hi do
    local p = hyper_tails(m, n, k)[counts[k] + 1]
    if p < best then
      best = p
    end
  end
  if best >= 1 then
    return 1
  end
  -- The bar at each cut: the fewest x's whose tail is no larger than the
  -- observed minimum (a relative slack absorbs the sums' rounding).
  local need, bar = {}, best * (1 + 1e-9)
  for k = lo, hi do
    local t = hyper_tails(m, n, k)
    for c = 1, #t - 1 do
      if t[c + 1] <= bar then
        need[k] = c
        break
      end
    end
  end
  return max(best, crossing_probability(m, n, lo, hi, need))
end

-- The value at fraction q of a sample (linear between order statistics).
local function quantile(xs, q)
  local s = {}
  for i = 1, #xs do
    s[i] = xs[i]
  end
  sort(s)
  local h = (#s - 1) * q + 1
  local lo = floor(h)
  if lo >= #s then
    return s[#s]
  end
  return s[lo] + (h - lo) * (s[lo + 1] - s[lo])
end

--- The shift of x's fast runs relative to y's (the difference of the two
--- samples' values at fraction q, default M.LOW_FRACTION), and its interval
--- at the given two-sided level, found by inverting M.p_low (the scan when
--- q is not given, the one cut at q when it is): the shifts d for which
--- x - d is told apart from y in neither direction.
---@param x number[]
---@param y number[]
---@param level number
---@param q? number
---@return number estimate, number low, number high
function M.low_shift(x, y, level, q)
  local est = quantile(x, q or M.LOW_FRACTION) - quantile(y, q or M.LOW_FRACTION)
  local a = (1 - level) / 2
  local function shifted(d)
    local out = {}
    for i = 1, #x do
      out[i] = x[i] - d
    end
    return out
  end
  -- Moving x down by d makes "x - d is faster" more likely: the upper bound
  -- is where that test starts to reject, the lower bound where "y is
  -- faster than x - d" stops rejecting. Log times: 5 is a factor of 150.
  local function upper()
    local lo, hi = -5, 5
    if M.p_low(shifted(hi), y, q) >= a then
      return math.huge
    end
    for _ = 1, 50 do
      local mid = (lo + hi) / 2
      if M.p_low(shifted(mid), y, q) < a then hi = mid else lo = mid end
    end
    return hi
  end
  local function lower()
    local lo, hi = -5, 5
    if M.p_low(y, shifted(lo), q) >= a then
      return -math.huge
    end
    for _ = 1, 50 do
      local mid = (lo + hi) / 2
      if M.p_low(y, shifted(mid), q) < a then lo = mid else hi = mid end
    end
    return lo
  end
  return est, lower(), upper()
end

local function check_opts(opts, default_alpha)
  local a = opts.alpha or default_alpha
  if type(a) ~= "number" or a <= 0 or a >= 0.5 then
    error("po.validate.decide: alpha must be a number in (0, 0.5)", 3)
  end
  local e = opts.min_effect or 0.01
  if type(e) ~= "number" or e < 0 or e >= 1 then
    error("po.validate.decide: min_effect must be a number in [0, 1)", 3)
  end
  return a, e
end

--- Compares one candidate's samples with the baseline's at a given one-sided
--- level. Times by default (lower is better); higher_is_better for scores.
--- `statistic` picks the test: "rank" (default; fine from 5 samples a side)
--- or "low" (the fastest runs; needs about 15 a side to decide anything).
--- With `margin`, p is the p-value that the candidate is better by more
--- than min_effect (the test of its runs made 1 + min_effect slower), so
--- "faster" says the gain exceeds min_effect at the given level, not only
--- that there is one.
--- Returns a table { verdict = "faster"|"slower"|"same", speedup, ci_low,
--- ci_high, p, p_worse, level, statistic, margin, n_candidate, n_baseline }
--- where speedup > 1 always means the candidate is better, p is the
--- one-sided p-value that it is, and p_worse the rank test's that it is
--- worse.
---@param candidate number[]
---@param baseline number[]
---@param opts? { alpha?: number, min_effect?: number, higher_is_better?: boolean, statistic?: "rank"|"low", margin?: boolean }
---@return table|nil result
---@return string? err
---@return string? code
function M.compare_samples(candidate, baseline, opts)
  opts = opts or {}
  local alpha, min_effect = check_opts(opts, M.ALPHA_ONE)
  if type(candidate) ~= "table" or type(baseline) ~= "table" then
    error("po.validate.decide: candidate and baseline must be arrays of samples", 2)
  end
  if #candidate < 2 or #baseline < 2 then
    return nil, "po.validate.decide: need at least 2 samples on each side", "EINVAL"
  end
  local x, err = logs(candidate)
  if not x then
    return nil, "po.validate.decide: candidate " .. err, "EINVAL"
  end
  local y
  y, err = logs(baseline)
  if not y then
    return nil, "po.validate.decide: baseline " .. err, "EINVAL"
  end
  if opts.higher_is_better then
    -- Better means smaller in what follows.
    for i = 1, #x do x[i] = -x[i] end
    for j = 1, #y do y[j] = -y[j] end
  end
  local statistic = opts.statistic or "rank"
  -- The sample the "better" test sees: with a margin, the candidate's runs
  -- made 1 + min_effect worse, so only a gain beyond it can pass.
  local tested = x
  if opts.margin then
    local d = log(1 + min_effect)
    tested = {}
    for i = 1, #x do tested[i] = x[i] + d end
  end
  local p_better, p_worse, est, lo, hi
  if statistic == "rank" then
    p_better, p_worse = M.p_smaller(tested, y), M.p_smaller(y, x)
    est, lo, hi = M.shift(x, y, 1 - 2 * alpha)
  elseif statistic == "low" then
    p_better, p_worse = M.p_low(tested, y), M.p_smaller(y, x)
    est, lo, hi = M.low_shift(x, y, 1 - 2 * alpha)
  else
    error("po.validate.decide: statistic must be \"rank\" or \"low\", got " .. tostring(statistic), 2)
  end
  local speedup = exp(-est)
  local verdict = "same"
  if p_better < alpha and speedup >= 1 + min_effect then
    verdict = "faster"
  elseif p_worse < alpha then
    verdict = "slower"
  end
  return {
    verdict = verdict, speedup = speedup,
    ci_low = exp(-hi), ci_high = exp(-lo), -- the interval of the speedup
    p = p_better, p_worse = p_worse, level = 1 - 2 * alpha, statistic = statistic, margin = opts.margin and true or false,
    n_candidate = #candidate, n_baseline = #baseline,
  }
end

--- The sample sizes at which the sequential design looks: from `first` to
--- `max_runs`, growing by about half each time.
---@param first integer
---@param max_runs integer
---@return integer[]
function M.looks(first, max_runs)
  local out = { first }
  while out[#out] < max_runs do
    out[#out + 1] = min(max_runs, max(out[#out] + 1, floor(out[#out] * 1.5 + 0.5)))
  end
  return out
end

--- How the error budget alpha is spent over the looks: look k may spend
--- alpha * (n_k / max_runs)^rho less what the earlier looks could spend
--- (a power-family spending function, Kim and DeMets), and the last look
--- whatever is left. rho = 1 spends evenly by runs; a larger rho keeps
--- most of alpha for the later looks, where close cases are decided, and
--- asks more of an early stop. Returns the level of each look; they sum to
--- alpha, so the union bound over looks holds whatever rho is.
---@param looks integer[]
---@param max_runs integer
---@param alpha number
---@param rho number
---@return number[]
function M.spending(looks, max_runs, alpha, rho)
  if type(rho) ~= "number" or rho <= 0 or rho ~= rho or rho == math.huge then
    error("po.validate.decide: spending must be a positive number, got " .. tostring(rho), 3)
  end
  local out, spent = {}, 0
  for k, n in ipairs(looks) do
    local upto = k == #looks and alpha or alpha * (n / max_runs) ^ rho
    out[k] = upto - spent
    spent = upto
  end
  return out
end

-- A small seeded generator (xorshift32) so the interleaving order is
-- reproducible from the seed alone and does not disturb math.random.
local function rng(seed)
  local s = floor(seed or 1) % 4294967296
  if s == 0 then s = 2463534242 end
  local bit = require "bit"
  local bxor, lshift, rshift, tobit = bit.bxor, bit.lshift, bit.rshift, bit.tobit
  s = tobit(s)
  return function(n)
    s = bxor(s, lshift(s, 13))
    s = bxor(s, rshift(s, 17))
    s = bxor(s, lshift(s, 5))
    return (s % 4294967296) % n + 1
  end
end
M.rng = rng

local function shuffle(list, next_int)
  for i = #list, 2, -1 do
    local j = next_int(i)
    list[i], list[j] = list[j], list[i]
  end
  return list
end

--- The sequential, interleaved comparison of several candidates with one
--- baseline. `run(arm)` times one run of arm 0 (the baseline) or arm i (the
--- i-th candidate) and returns the measurement, or nil and an error.
---
--- Each round runs every arm still undecided, and the baseline, once, in a
--- seeded shuffled order (after `warmup` untimed rounds), so drift and
--- periodic noise fall on all arms alike. At each look (M.looks) Holm's
--- procedure at that look's share of alpha (M.spending) picks the
--- candidates that are better; a candidate clearly worse, or whose interval
--- at the `futility` level rules out min_effect, stops; the rest go on, up
--- to `max_runs` runs.
---
--- Returns { candidates = { [i] = result of compare_samples + runs, samples, stopped },
--- baseline = samples, order = { arm, ... } (every timed run in order),
--- rounds = n } or nil, message, code when a run fails.
---@param n_candidates integer
---@param run fun(arm: integer): number|nil, string?
--- Defaults: alpha 0.05 (the family-wise false-accept rate of a cycle),
--- min_effect 0.01, warmup 1, first 6, max_runs 40, spending 3, futility
--- 0.45 (the level, one-sided, of the bound that must still reach
--- min_effect: about the point estimate, so a candidate that looks no
--- better stops at once), statistic "low" from low_from = 14 runs on.
--- These were chosen on the calibration benchmark's recorded timings
--- (docs/benchmarks.md): power at a 5% gain of 94–100% under a compile
--- loop, with false accepts well under 1% a comparison, in 0.56–0.66 of
--- the timing seconds of benchstat's 20-run design; a lower futility level
--- or later futility looks saved a few more true gains but cost far more
--- runs of hopeless ones. `margin = true` tests for a gain beyond
--- min_effect (compare_samples); the optimizer's confirmation uses it.
---@param opts? { alpha?: number, min_effect?: number, higher_is_better?: boolean, warmup?: integer, first?: integer, max_runs?: integer, spending?: number, futility?: number, statistic?: "low"|"rank", low_from?: integer, margin?: boolean, seed?: integer, on_round?: fun(round: integer, active: integer) }
function M.sequential(n_candidates, run, opts)
  opts = opts or {}
  local alpha, min_effect = check_opts(opts, M.ALPHA)
  if type(n_candidates) ~= "number" or n_candidates < 1 or n_candidates % 1 ~= 0 then
    error("po.validate.decide.sequential: n_candidates must be a positive integer", 2)
  end
  if type(run) ~= "function" then
    error("po.validate.decide.sequential: run must be a function(arm) -> number", 2)
  end
  local warmup = opts.warmup or 1
  local first = opts.first or 6
  local max_runs = max(opts.max_runs or M.MAX_RUNS, first)
  local futility = opts.futility or M.FUTILITY
  local looks = M.looks(first, max_runs)
  local spend = M.spending(looks, max_runs, alpha, opts.spending or M.SPENDING)
  local next_int = rng(opts.seed or 1)
  local hib = opts.higher_is_better
  local statistic = opts.statistic or M.STATISTIC

  local samples = {}
  for arm = 0, n_candidates do
    samples[arm] = {}
  end
  local active, results = {}, {}
  for i = 1, n_candidates do
    active[i] = true
  end
  local order = {}

  local function round(timed)
    local arms = { 0 }
    for i = 1, n_candidates do
      if active[i] then
        arms[#arms + 1] = i
      end
    end
    shuffle(arms, next_int)
    for _, arm in ipairs(arms) do
      local v, err, code = run(arm)
      if v == nil then
        return nil, err or "run failed", code or "EFAILED"
      end
      if timed then
        local s = samples[arm]
        s[#s + 1] = v
        order[#order + 1] = arm
      end
    end
    return true
  end

  for _ = 1, warmup do
    local ok, err, code = round(false)
    if not ok then
      return nil, err, code
    end
  end

  local rounds, look_i = 0, 1
  while look_i <= #looks do
    local any = false
    for i = 1, n_candidates do
      any = any or active[i]
    end
    if not any then
      break
    end
    local ok, err, code = round(true)
    if not ok then
      return nil, err, code
    end
    rounds = rounds + 1
    if opts.on_round then
      opts.on_round(rounds, #order)
    end
    if rounds >= looks[look_i] then
      local last = look_i == #looks
      local look_statistic = statistic
      if statistic == "low" and looks[look_i] < (opts.low_from or M.LOW_FROM) then
        look_statistic = "rank"
      end
      -- Holm across the candidates still active at this look.
      local pending = {}
      for i = 1, n_candidates do
        if active[i] then
          local r, err, code = M.compare_samples(samples[i], samples[0], { alpha = spend[look_i], min_effect = min_effect,
            higher_is_better = hib, statistic = look_statistic, margin = opts.margin })
          if not r then
            return nil, err, code -- a measurement that is not a positive number
          end
          r.runs, r.samples = #samples[i], samples[i]
          pending[#pending + 1] = { i = i, r = r }
        end
      end
      sort(pending, function(a, b) return a.r.p < b.r.p end)
      local k = #pending
      local holm_open = true
      for rank, e in ipairs(pending) do
        local r = e.r
        local threshold = spend[look_i] / (k - rank + 1)
        local passes = holm_open and r.p < threshold
        holm_open = passes
        if passes and r.speedup >= 1 + min_effect then
          r.verdict = "faster"
        elseif r.verdict == "faster" then
          r.verdict = "same" -- significant alone, not once the family is counted
        end
        local stop = r.verdict ~= "same" or last
        if not stop then
          -- Futility: the speedup's upper bound at the looser level cannot
          -- reach min_effect, so more runs would not make it "faster".
          local x, y = logs(samples[e.i]), logs(samples[0])
          if hib then
            for a = 1, #x do x[a] = -x[a] end
            for b = 1, #y do y[b] = -y[b] end
          end
          local _, lo = (statistic == "low" and M.low_shift or M.shift)(x, y, 1 - 2 * futility)
          if exp(-lo) < 1 + min_effect then
            stop = true
          end
        end
        if stop then
          r.stopped = last and "cap" or (r.verdict ~= "same" and "clear" or "futile")
          if r.verdict == "same" and r.p_worse < alpha then
            -- "Slower" accepts nothing, so it needs no share of the budget:
            -- a candidate that stops clearly worse at the cycle's own level
            -- is reported as such, not as "same".
            r.verdict = "slower"
          end
          results[e.i] = r
          active[e.i] = false
        end
      end
      look_i = look_i + 1
    end
  end
  return { candidates = results, baseline = samples[0], order = order, rounds = rounds, looks = looks }
end

return M
