--- The metrics primitives each collector feeds, labelled with its name, so
--- that po.metrics.expose() shows its cycles, calls, tokens, cost and
--- latencies.
---
--- The primitives' constructors (poengine.metrics: counter, gauge,
--- histogram) are passed in rather than required: poengine.metrics creates
--- collectors, and the two modules must not require each other.
local pairs = pairs

local M = {}

--- The instruments of the collector called name.
---@param metrics table   poengine.metrics (counter, gauge, histogram)
---@param name string
---@return table
function M.new(metrics, name)
  local l = { collector = name }
  local function with(extra)
    local t = { collector = name }
    for k, v in pairs(extra) do
      t[k] = v
    end
    return t
  end
  local seconds = { 0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 10, 30, 60, 300, 900, 3600 }
  return {
    cycles_ok = metrics.counter("po_cycles_total", { help = "Optimization cycles ended, by result.",
      labels = with { result = "success" } }),
    cycles_failed = metrics.counter("po_cycles_total", { help = "Optimization cycles ended, by result.",
      labels = with { result = "failure" } }),
    active = metrics.gauge("po_cycles_active", { help = "Optimization cycles started and not ended.", labels = l }),
    duration = metrics.histogram("po_cycle_duration_seconds", { help = "Duration of ended optimization cycles.",
      unit = "seconds", buckets = seconds, labels = l }),
    tokens_in = metrics.counter("po_llm_tokens_total", { help = "LLM tokens spent (cache misses), by direction.",
      labels = with { direction = "in" } }),
    tokens_out = metrics.counter("po_llm_tokens_total", { help = "LLM tokens spent (cache misses), by direction.",
      labels = with { direction = "out" } }),
    cost = metrics.counter("po_llm_cost_dollars_total", { help = "US dollars spent on LLM calls (cache misses).",
      labels = l }),
    validation = metrics.histogram("po_validation_duration_seconds", {
      help = "Duration of recorded validation runs.", unit = "seconds", buckets = seconds, labels = l }),
    file_operations = metrics.counter("po_file_operations_total", { help = "File operations recorded in cycles.",
      labels = l }),
    per_provider = {},
    with = with,
    metrics = metrics,
  }
end

--- The instruments of one provider (created on first use): calls by cache
--- outcome (hit, miss) and latency.
---@param ins table       what M.new returned
---@param provider string
---@return table
function M.provider(ins, provider)
  local p = ins.per_provider[provider]
  if not p then
    local metrics, with = ins.metrics, ins.with
    p = {
      hit = metrics.counter("po_llm_calls_total", { help = "LLM calls, by provider and cache outcome.",
        labels = with { provider = provider, cache = "hit" } }),
      miss = metrics.counter("po_llm_calls_total", { help = "LLM calls, by provider and cache outcome.",
        labels = with { provider = provider, cache = "miss" } }),
      latency = metrics.histogram("po_llm_latency_seconds", { help = "LLM call latency, by provider.",
        unit = "seconds", buckets = { 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120 },
        labels = with { provider = provider } }),
    }
    ins.per_provider[provider] = p
  end
  return p
end

return M
