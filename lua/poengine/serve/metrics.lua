--- /metrics for poengine serve: the process's own registry
--- (po.metrics.collect(), the server's request counts among them) and one
--- family per run figure, labelled by run, in Prometheus text 0.0.4 or
--- OpenMetrics 1.0 as the scraper's Accept header asks.
local po = require "poengine"
local expose = require "poengine.metrics.expose"

local M = {}

M.PROMETHEUS = "text/plain; version=0.0.4; charset=utf-8"
M.OPENMETRICS = "application/openmetrics-text; version=1.0.0; charset=utf-8"

--- "openmetrics" when the Accept header lists OpenMetrics text (as
--- Prometheus sends it, with a q-value below it for the old format), else
--- "prometheus".
function M.negotiate(accept)
  accept = tostring(accept or ""):lower()
  local best, best_q = "prometheus", -1
  for part in accept:gmatch("[^,]+") do
    local mime = part:match("^%s*([^;%s]+)")
    local q = tonumber(part:match(";%s*q=([%d.]+)")) or 1
    local fmt = mime == "application/openmetrics-text" and "openmetrics"
      or (mime == "text/plain" or mime == "*/*") and "prometheus" or nil
    if fmt and q > best_q then
      best, best_q = fmt, q
    end
  end
  return best
end

-- The run families: name, help, and how to read the value(s) off a run
-- summary (nil: no sample for that run).
local families = {
  { name = "poengine_run_cycles", help = "Cycles the run has recorded.",
    value = function(r) return r.cycles end },
  { name = "poengine_run_running", help = "1 while the run's process is running, else 0.",
    value = function(r) return r.status == "running" and 1 or 0 end },
  { name = "poengine_run_best_speedup",
    help = "The best over the original, in the objective's direction (1 = no better).",
    value = function(r) return r.best and r.best.speedup end },
  { name = "poengine_run_cost_usd", help = "What the run's LLM calls cost, in dollars.", unit = "",
    value = function(r) return r.cost and r.cost.usd end },
  { name = "poengine_run_tokens", help = "Tokens the run's LLM calls used.",
    value = function(r) return r.cost and r.cost.tokens end },
  { name = "poengine_run_candidates", help = "The run's candidates by outcome.", outcome = true },
}

local OUTCOMES = { "faster", "same", "slower", "failed", "unusable" }

-- A run's candidates counted by outcome, summed over its cycles.
local function outcome_counts(r)
  local n = { faster = 0, same = 0, slower = 0, failed = 0, unusable = 0 }
  for _, o in ipairs(r.cycle_outcomes or {}) do
    n.faster, n.same, n.slower = n.faster + o.faster, n.same + o.same, n.slower + o.slower
    n.unusable = n.unusable + o.unusable
    for _, count in pairs(o.failed) do
      n.failed = n.failed + count
    end
  end
  return n
end

--- The run families as metric entries (the shape po.metrics.collect()
--- gives), for the models in `runs`.
function M.run_metrics(runs)
  local out = {}
  for _, f in ipairs(families) do
    for _, r in ipairs(runs) do
      if f.outcome then
        local n = outcome_counts(r)
        for _, o in ipairs(OUTCOMES) do
          out[#out + 1] = { name = f.name, type = "gauge", help = f.help, unit = "",
            label_names = { "run", "task", "outcome" }, label_values = { r.id, tostring(r.task or ""), o },
            value = n[o] }
        end
      else
        local v = f.value(r)
        if type(v) == "number" then
          out[#out + 1] = { name = f.name, type = "gauge", help = f.help, unit = "",
            label_names = { "run", "task" }, label_values = { r.id, tostring(r.task or "") }, value = v }
        end
      end
    end
  end
  return out
end

--- The exposition for `runs` (models) in format "prometheus" or
--- "openmetrics", and its content type.
function M.render(runs, fmt)
  local list = po.metrics.collect()
  for _, m in ipairs(M.run_metrics(runs)) do
    list[#list + 1] = m
  end
  return expose.expose(fmt, list), fmt == "openmetrics" and M.OPENMETRICS or M.PROMETHEUS
end

return M
