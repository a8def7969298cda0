--- The record phase of a cycle (poengine.optimizer): evidence for the next
--- prompt, a line per candidate and the cycle's validation and timing spans
--- in the event log, the cycle in the collector, the cycle's summary line,
--- and the checkpoint. The functions taking self are installed as methods
--- of the optimizer object (init.lua).
local po = require "poengine"
local result = require "poengine.optimizer.result"
local timing = require "poengine.optimizer.timing"

local M = {}

local format = string.format
--- What a candidate changed, for people: the parameters that differ from
--- `base` ("opt=-O1, unroll=\"\""; all of them without a base), or its
--- diff's files with their line counts; nil when neither is known.
function M.describe_change(c, base)
  if c.params then
    local keys = {}
    for k in pairs(c.params) do
      keys[#keys + 1] = k
    end
    table.sort(keys, function(a, b) return tostring(a) < tostring(b) end)
    local parts = {}
    for _, k in ipairs(keys) do
      local v = c.params[k]
      if not base or po.json.encode(base[k]) ~= po.json.encode(v) then
        local text = type(v) == "string" and v ~= "" and not v:find("[%s,]") and v or po.json.encode(v)
        parts[#parts + 1] = tostring(k) .. "=" .. text
      end
    end
    return #parts > 0 and table.concat(parts, ", ") or "the same parameters"
  end
  if c.diff and c.diff ~= "" then
    local text = require("poengine.optimizer.diff").summary(c.diff)
    return text ~= "" and text or nil
  end
  return nil
end

--- A verdict for people: "faster, 1.93x [1.88, 1.99], 12 runs", and the
--- confirmation's when there was one.
function M.describe_verdict(c)
  if not c.verdict then
    return "stopped at " .. tostring(c.stage)
  end
  local function verdict(v)
    local interval = v.ci_low and format(" [%.3g, %.3g]", v.ci_low, v.ci_high) or " (no interval)"
    return format("%s, %.3gx%s, %d runs", v.verdict, v.speedup or 0, interval, v.runs or 0)
  end
  local text = verdict(c)
  if c.confirm then
    text = text .. "; timed again: " .. (c.confirm.speedup and verdict(c.confirm) or ("failed: " .. tostring(c.confirm.error)))
  end
  return text
end

--- A process's id and start time in clock ticks since boot, from
--- /proc/<pid>/stat (field 22); `which` is a pid or "self". With the pid
--- the start time names the process even after the pid is reused, so a
--- reader can tell a run still going from one that was killed. nil where
--- there is no such process (or no /proc).
function M.process(which)
  local f = io.open("/proc/" .. tostring(which) .. "/stat", "rb")
  if not f then
    return nil
  end
  local stat = f:read("*a") or ""
  f:close()
  local pid = tonumber(stat:match("^(%d+)"))
  local rest = stat:match("%)%s+(.*)$") or ""
  local i = 2 -- the field after ")" is the third
  for field in rest:gmatch("%S+") do
    i = i + 1
    if i == 22 then
      return pid, tonumber(field)
    end
  end
  return pid, nil
end

--- The event that opens a run (and each resumption of it): who runs it
--- (pid and process start, for "is it still running?"), the method, the
--- objective's direction, the cycle budget and where a resumed run went on.
function M.start_event(self)
  local task = self.task
  local pid, started_ticks = M.process("self")
  return { kind = "start", pid = pid, process_start = started_ticks,
    method = type(task.method) == "function" and "function" or tostring(task.method),
    direction = task.objective.direction == "max" and "max" or "min", cycles = task.budget.cycles,
    candidates_per_cycle = task.candidates_per_cycle, resumed_from = self.resumed_from,
    started = po.time() }
end

-- The last `limit` bytes of a validator's output, for the dashboards.
local function output_tail(text, limit)
  if type(text) ~= "string" or text == "" then
    return nil
  end
  if #text <= limit then
    return text
  end
  return "…" .. text:sub(-limit)
end

--- What the run's events say of a candidate's validators: name, status,
--- duration, errors, and the tail of its output.
function M.results_of(c)
  local results = {}
  for _, r in ipairs((c.report and c.report.results) or {}) do
    results[#results + 1] = { name = r.name, status = r.status, passed = r.passed, duration = r.duration,
      errors = r.errors, stdout = output_tail(r.stdout, 4000), stderr = output_tail(r.stderr, 4000) }
  end
  return results
end

--- The event of a candidate whose validation has just finished, before
--- the cycle's timing: what a live view shows while the cycle goes on (the
--- candidate event at the cycle's end says the rest).
function M.validated_event(cy, c)
  return { kind = "validated", cycle = cy.k, candidate = c.id, parent = cy.parent, params = c.params, diff = c.diff,
    passed = c.passed == true, stage = c.stage, results = M.results_of(c), cost = c.cost }
end

function M.record_cycle(self, cycle_id, candidates, accepted_c)
  local col = self.collector
  M.record_report(self, cycle_id, candidates, accepted_c)
  col:record_validation(cycle_id, self.validation_time, self.validation_count)
  col:record_file_operation(cycle_id, self.file_operations)
  if self.best_score then
    col:record_score(cycle_id, accepted_c and accepted_c.score or self.baseline.score, self.best_score)
  end
end

--- A cycle's candidates counted by outcome: { proposed, unusable,
--- failed = { [stage] = n }, slower, same, faster }.
function M.outcomes(candidates)
  local o = { proposed = #candidates, unusable = 0, failed = {}, slower = 0, same = 0, faster = 0 }
  for _, c in ipairs(candidates) do
    if c.malformed then
      o.unusable = o.unusable + 1
    elseif c.verdict and o[c.verdict] then
      o[c.verdict] = o[c.verdict] + 1
    else
      local stage = tostring(c.stage or "unknown")
      o.failed[stage] = (o.failed[stage] or 0) + 1
    end
  end
  return o
end

--- What the dashboards read of a cycle (into its metadata): the
--- objective's direction, how many candidates were proposed, unusable,
--- failed (by stage), slower, same and faster, and the accepted one's
--- summary; and, once, the direction in the collector's run record.
function M.record_report(self, cycle_id, candidates, accepted_c)
  local col = self.collector
  local direction = self.task.objective.direction == "max" and "max" or "min"
  if not self.run_recorded and col.set_run then
    col:set_run { direction = direction, task = self.task.id, method = tostring(self.task.method),
      original_score = type(self.first_score) == "number" and self.first_score or nil }
    self.run_recorded = true
  end
  if not col.annotate then
    return -- a collector of the script's own, without per-cycle notes
  end
  local outcomes = M.outcomes(candidates)
  local accepted
  if accepted_c then
    accepted = { id = tostring(accepted_c.id), change = M.describe_change(accepted_c) or "", speedup = accepted_c.speedup,
      ci_low = accepted_c.ci_low, ci_high = accepted_c.ci_high, verdict = accepted_c.verdict,
      confirmed = accepted_c.confirm and accepted_c.confirm.verdict or nil }
  end
  col:annotate(cycle_id, { direction = direction, outcomes = outcomes, accepted = accepted })
end

-- The cycle's spans in the event log: when each validation and each timed
-- run started and ended (wall-clock seconds), and on which CPU; and how
-- spread the baseline's timed runs were (timing.noise).
function M.record_spans(self, cy, kind)
  self:event { kind = kind or "timing", cycle = cy.k, cpu = cy.cpu, noise = cy.noise,
    validations = cy.spans.validations, runs = cy.spans.runs }
end

-- "; timing noisy: ..." when the baseline's timed runs were spread beyond
-- timing.NOISY (other work on the machine), "" otherwise: a verdict of
-- "same" then says less than it seems to.
function M.noise_note(noise)
  if not noise or noise < timing.NOISY then
    return ""
  end
  return format("; timing noisy: the baseline's median run took %.2fx its fastest tenth, so a small gain may"
    .. " have been missed (other work on the machine?)", noise)
end

-- Phase 5, record: evidence for the next cycle, a line per candidate in
-- the event log, the cycle's spans, the cycle in the collector, the
-- summary line and the checkpoint.
function M.record_phase(self, cy, candidates, best, baseline_stats)
  local k = cy.k
  local evidence = {}
  local malformed = 0
  for _, c in ipairs(candidates) do
    if c.llm_failed then
      malformed = malformed + 1 -- no reply: nothing for the next prompt
    elseif c.malformed then
      malformed = malformed + 1
      evidence[#evidence + 1] = { label = c.id .. ": the reply could not be used", text = c.malformed }
    elseif c.evidence then
      evidence[#evidence + 1] = { label = c.id .. ": failed at " .. tostring(c.stage), text = c.evidence }
    elseif c.stats then
      evidence[#evidence + 1] = { label = c.id .. ": benchmark",
        text = format("median %.3g beside the baseline's %.3g: %s", c.stats.median, baseline_stats.median,
          M.describe_verdict(c)) }
    end
  end
  self.evidence = evidence
  self.malformed = self.malformed + malformed

  for _, c in ipairs(candidates) do
    self:event {
      kind = "candidate", cycle = k, candidate = c.id, parent = cy.parent, diff = c.diff, params = c.params,
      malformed = c.malformed, stage = c.stage, results = M.results_of(c), score = c.score,
      median = c.stats and c.stats.median, baseline = baseline_stats.median, verdict = c.verdict,
      speedup = c.speedup, ci_low = c.ci_low, ci_high = c.ci_high, runs = c.runs, rule = c.rule,
      confirm = c.confirm, accepted = c.accepted, cost = c.cost,
    }
  end
  self:record_spans(cy)

  self:record_cycle(cy.id, candidates, best)
  self.collector:end_cycle(cy.id, true)
  if not self.keep_sandboxes then
    self.sandboxes:remove_all()
  end
  local spent = self:spent()
  self:event { kind = "cycle", cycle = k, parent = cy.parent, accepted = best and tostring(best.id) or nil,
    baseline_score = cy.baseline_score, best_score = self.best_score, original_score = self.first_score,
    spent = spent }
  -- Failed LLM calls are said as such, with the first error, not counted
  -- among unusable replies.
  self:say("info", "cycle %d of %d: %d candidates%s, %d validated, %s; best score %s%s (baseline %s); spent $%.4f, %d tokens%s",
    k, self.task.budget.cycles, #candidates, cy.llm and (" (" .. cy.llm.line .. ")") or "",
    #candidates - malformed,
    best and ("accepted " .. best.id .. format(" (%.2fx)", best.speedup or 0)) or "none accepted",
    result.format_score(self.best_score), self:improvement_note(),
    result.format_score(cy.baseline_score or baseline_stats.median),
    spent.usd, spent.tokens, M.noise_note(cy.noise))
  self:checkpoint()
end

-- ", 1.93x better than the original" when the best so far beats the
-- original's first figure in the objective's direction; "" otherwise.
function M.improvement_note(self)
  local ratio = result.improvement(self.task.objective.direction, self.first_score, self.best_score)
  if not ratio or ratio == 1 then
    return ""
  end
  return format(", %.2fx better than the original's", ratio)
end

return M
