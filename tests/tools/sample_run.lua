--- A simulated optimization run: n cycle records with the collector's fields
--- (plus per-provider and per-validator figures), deterministic for a given
--- seed. The screenshot script draws it and the dashboard benchmark renders
--- it; poengine's dashboard reads it as a list source.
---
---   local cycles = require("tests.tools.sample_run")(1000 [, seed])
local M = {}

local floor, exp, max, min = math.floor, math.exp, math.max, math.min

-- A small linear congruential generator, so the run is the same everywhere.
local function rng(seed)
  local state = seed % 2147483647
  if state <= 0 then
    state = state + 2147483646
  end
  return function()
    state = (state * 48271) % 2147483647
    return state / 2147483647
  end
end

local PROVIDERS = {
  { name = "openai", latency = 1.4, price = 0.0000025 },
  { name = "anthropic", latency = 1.9, price = 0.000003 },
  { name = "ollama", latency = 3.2, price = 0 },
}
local VALIDATORS = { { "build", 0.97, 8 }, { "tests", 0.9, 14 }, { "lint", 0.99, 1.5 }, { "bench", 0.95, 6 } }
local ERRORS = { "tests failed: 3 of 412", "build failed: exit status 2", "benchmark regressed by 4.1%",
  "validator timed out after 120 s" }

---@param n integer
---@param seed? integer
---@return table[]
function M.cycles(n, seed)
  local rand = rng(seed or 42)
  local list, t, best = {}, 1767225600, nil
  for i = 1, n do
    local progress = i / max(n, 1)
    local calls = 2 + floor(rand() * 5)
    -- The cache warms up: hits grow from ~10% to ~65% of calls.
    local p_hit = 0.1 + 0.55 * (1 - exp(-4 * progress))
    local hits, tokens_in, tokens_out, cost, saved_in, saved_cost, llm_time = 0, 0, 0, 0, 0, 0, 0
    local providers = {}
    for _ = 1, calls do
      local p = PROVIDERS[1 + floor(rand() * (rand() < 0.8 and 2 or 3))]
      local pin, pout = 800 + floor(rand() * 1600), 150 + floor(rand() * 450)
      local price = (pin + 3 * pout) * p.price
      local per = providers[p.name] or { calls = 0, cache_hits = 0, tokens_in = 0, tokens_out = 0, cost = 0,
        latency = 0, latency_count = 0 }
      providers[p.name] = per
      per.calls = per.calls + 1
      if rand() < p_hit then
        hits = hits + 1
        per.cache_hits = per.cache_hits + 1
        saved_in, saved_cost = saved_in + pin + pout, saved_cost + price
      else
        local latency = p.latency * (0.5 + rand())
        tokens_in, tokens_out, cost = tokens_in + pin, tokens_out + pout, cost + price
        per.tokens_in, per.tokens_out, per.cost = per.tokens_in + pin, per.tokens_out + pout, per.cost + price
        per.latency, per.latency_count = per.latency + latency, per.latency_count + 1
        llm_time = llm_time + latency
      end
    end
    local validators, vtime, ok = {}, 0, true
    for _, v in ipairs(VALIDATORS) do
      local d = v[3] * (0.6 + rand() * 0.8) * (1 + 0.3 * progress)
      local passed = rand() < v[2]
      ok = ok and passed
      validators[v[1]] = { runs = 1, passed = passed, duration = d }
      vtime = vtime + d
    end
    local duration = llm_time + vtime + 2 + rand() * 6
    local score = 0.42 + 0.45 * (1 - exp(-3 * progress)) + (rand() - 0.5) * 0.06
    if ok then
      best = best and max(best, score) or score
    end
    list[i] = {
      cycle_id = string.format("cycle-%04d", i),
      start_time = t,
      end_time = t + duration,
      duration = duration,
      llm_calls = calls,
      llm_cache_hits = hits,
      llm_cache_misses = calls - hits,
      tokens_in = tokens_in,
      tokens_out = tokens_out,
      tokens_saved = saved_in,
      cost = cost,
      cost_saved = saved_cost,
      validation_time = vtime,
      validation_count = #VALIDATORS,
      file_operations = 1 + floor(rand() * 6),
      success = ok,
      error = not ok and ERRORS[1 + floor(rand() * #ERRORS)] or nil,
      metadata = { strategy = rand() < 0.5 and "rewrite-loop" or "inline-hot-path", temperature = 0.2 },
      score = min(score, 1),
      best_score = best,
      providers = providers,
      validators = validators,
    }
    t = t + duration + 0.5 + rand() * 2
  end
  return list
end

return setmetatable(M, {
  __call = function(_, n, seed)
    return M.cycles(n, seed)
  end,
})
