--- The router's counts (poengine.llm.router): per provider, latencies for
--- the percentiles, what `router:stats()` reports, and each call recorded
--- in the global metrics collector's active cycle.
local stats = require "poengine.metrics.stats"

local pairs = pairs

local M = {}

local LATENCY_KEEP = 10000

function M.provider(self, name)
  local s = self.by_provider[name]
  if not s then
    s = { calls = 0, tokens = 0, errors = 0, cost = 0, latencies = {}, next = 1 }
    self.by_provider[name] = s
  end
  return s
end

function M.record_latency(s, latency)
  s.latencies[s.next] = latency
  s.next = s.next % LATENCY_KEEP + 1
end

--- The router's own counts (never the cache's): total_calls, total_tokens,
--- total_errors, success_rate, by_provider, cache, cost, tokens_saved,
--- cost_saved; and shared, the figures of limits shared through Redis.
function M.stats(self)
  local c = self.counts
  local by = {}
  for name, s in pairs(self.by_provider) do
    local sorted = stats.sorted(s.latencies)
    by[name] = { calls = s.calls, tokens = s.tokens, errors = s.errors, cost = s.cost,
      latency_p50 = stats.percentile(sorted, 50), latency_p99 = stats.percentile(sorted, 99) }
  end
  local lookups = c.hits + c.misses
  return {
    total_calls = c.calls,
    total_tokens = c.tokens,
    total_errors = c.errors,
    success_rate = c.calls > 0 and (c.calls - c.errors) / c.calls or 0,
    by_provider = by,
    cache = {
      hits = c.hits,
      misses = c.misses,
      hit_rate = lookups > 0 and c.hits / lookups or 0,
      api_call_reduction = c.calls > 0 and 100 * c.hits / c.calls or 0, -- percent, as in cache:stats()
    },
    cost = self.spent_usd,
    tokens_saved = c.tokens_saved,
    cost_saved = c.cost_saved,
    shared = self.shared and require("poengine.llm.router_shared").stats(self.shared) or nil,
  }
end

-- Records the call in the global collector's active cycle (opts.cycle, or
-- the only active one), when the script has a global collector.
function M.record_call(opts, call)
  local col = require("poengine.metrics").existing_global()
  if not col then
    return
  end
  local id = opts.cycle
  if id == nil then
    local active = col:active()
    if #active ~= 1 then
      return
    end
    id = active[1]
  end
  col:record_llm_call(id, call)
end

return M
