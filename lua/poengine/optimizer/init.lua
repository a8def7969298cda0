--- The optimization cycle: propose → apply in a sandbox → validate in
--- parallel → measure → accept. The cycle reads as its phases, each a
--- method of its own (baseline, validate, time, select, record); the task's
--- checks, the sandboxes and the proposers are beside it (task.lua,
--- sandbox.lua, propose.lua).
---
---     local result = po.optimizer.run(task, { router = r })
---
--- A task (docs/optimizer.md has every field):
---
---     { id = "wordfreq", workdir = "project", target_files = { "wordfreq.lua" },
---       objective = { validator = po.validate.benchmark{ argv = {...} }, direction = "min" },
---       validators = { po.validate.syntax{...}, po.validate.tests{...} },
---       method = "llm-rewrite" | "llm-diff" | "search" | function(state) ... end,
---       candidates_per_cycle = 4, budget = { cycles =, seconds =, usd =, tokens = },
---       stop = { target =, stall_cycles = }, apply = false }
---
--- Each cycle: the proposer makes N candidates (LLM requests run concurrently
--- through the router and its cache); each well-formed candidate gets its own
--- sandbox and runs the task's validators as a cascade on the shared pool,
--- all candidates and the baseline at once. Only when all of that has
--- finished are the survivors and the baseline timed (timing.lua):
--- interleaved, after warm-ups, pinned to one CPU, and decided by
--- decide.sequential, whose false-accept rate is controlled across the
--- cycle's candidates. The best candidate judged "faster" becomes the next
--- baseline. Every cycle goes through the collector, every candidate and
--- the cycle's validation and timing spans into the event log, and a
--- checkpoint after each cycle lets `resume = true` continue.
local po = require "poengine"
local diff = require "poengine.optimizer.diff"
local prompts = require "poengine.optimizer.prompts"
local search = require "poengine.optimizer.search"
local task_mod = require "poengine.optimizer.task"
local sandbox = require "poengine.optimizer.sandbox"
local propose = require "poengine.optimizer.propose"
local checkpoint = require "poengine.optimizer.checkpoint"
local result = require "poengine.optimizer.result"
local timing = require "poengine.optimizer.timing"
local record = require "poengine.optimizer.record"
local score = require "poengine.optimizer.score"
local publish = require "poengine.runs.publish"

local M = {}
M.diff, M.prompts, M.search = diff, prompts, search
M.check_task, M.load_task = task_mod.check, task_mod.load

local format = string.format

---------------------------------------------------------------------------
-- Scores and evidence

M.better, M.format_score = score.better, result.format_score
local evidence_of = propose.evidence_of

---------------------------------------------------------------------------
-- The run

local Optimizer = {}
Optimizer.__index = Optimizer
Optimizer.checkpoint = checkpoint.save
Optimizer.finish, Optimizer.final_comparison = result.finish, result.final_comparison
Optimizer.record_cycle, Optimizer.record_spans, Optimizer.record_phase, Optimizer.improvement_note =
  record.record_cycle, record.record_spans, record.record_phase, record.improvement_note
M.describe_verdict = record.describe_verdict
Optimizer.llm_failed_cycle, Optimizer.pareto_phase = propose.llm_failed_cycle, score.pareto_phase

local function now_budget_exceeded(self)
  local b = self.task.budget
  if self.cycle >= b.cycles then
    return "cycles"
  end
  if b.seconds and po.now() - self.started >= b.seconds then
    return "seconds"
  end
  local spent = self:spent()
  if b.usd and spent.usd >= b.usd then
    return "usd"
  end
  if b.tokens and spent.tokens >= b.tokens then
    return "tokens"
  end
  return self.budget_hit
end

-- Whether score a beats b in the objective's direction(s) (score.lua).
function Optimizer:better(a, b)
  local o = self.task.objective
  return score.better(o.direction, a, b, o.directions)
end

function Optimizer:spent()
  local usd, tokens = self.prior_spent.usd, self.prior_spent.tokens
  if self.router and self.router.stats then
    local s = self.router:stats()
    usd = usd + (s.cost or 0)
    tokens = tokens + (s.total_tokens or 0)
  end
  return { usd = usd, tokens = tokens }
end

function Optimizer:say(level, fmt, ...)
  if self.quiet or (level == "verbose" and not self.verbose) then
    return
  end
  -- Library code prints nothing itself: progress goes to the caller's
  -- function (the CLI and the examples print it).
  if self.progress then
    self.progress(format(fmt, ...))
  end
end

-- A passing status (what the cycle is doing now), for a live line.
function Optimizer:status(fmt, ...)
  if self.on_status and not self.quiet then
    self.on_status(format(fmt, ...))
  end
end

function Optimizer:event(record)
  record.time = os.date("!%Y-%m-%dT%H:%M:%SZ")
  record.task = self.task.id
  local line = po.json.encode(record, { sort_keys = true })
  self.events:write(line, "\n")
  self.events:flush()
  if self.publisher then
    self.publisher:publish(line)
  end
end

---------------------------------------------------------------------------
-- The cycle, phase by phase. Each phase is a method taking the cycle's
-- context cy = { k, id, state, baseline_cand, spans }. Validation (the
-- baseline and every candidate at once) finishes before timing starts:
-- timing beside builds and tests would read the baseline slow and make
-- anything look faster.

-- The task's validators as a cascade on a sandbox, counted in the cycle;
-- its span (start and end, covering every child it ran) goes into
-- cy.spans.validations.
function Optimizer:run_validators(cy, cand)
  local start = po.time()
  local report = po.validate.run(self.task.validators, cand, { cascade = true, executor = self.task.executor })
  local spans = cy.spans.validations
  spans[#spans + 1] = { candidate = cand.id, start = start, finish = po.time() }
  self.validation_time = self.validation_time + report.duration
  self.validation_count = self.validation_count + #report.results
  return report
end

-- A sandbox holding `files` over the workdir, with its point of the search
-- space applied (params); counted in the cycle's file operations. Returns
-- its directory or nil, message.
function Optimizer:sandbox_of(name, files, params)
  local dir, err = self.sandboxes:make(name, files)
  if not dir then
    return nil, err
  end
  self.file_operations = self.file_operations + #self.task.target_files
  if params and self.task.apply_params then
    self.task.apply_params(params, dir)
  end
  return dir
end

-- Starts the cycle in the collector; returns its context.
function Optimizer:begin_cycle()
  self.cycle = self.cycle + 1
  local k = self.cycle
  local id = format("%s-%d", self.task.id, k)
  local rec = assert(self.collector:start_cycle(id, { task = self.task.id, cycle = k,
    method = tostring(self.task.method) }))
  self.validation_time, self.validation_count, self.file_operations = 0, 0, 0
  local state = {
    task = self.task, cycle = k, n = self.task.candidates_per_cycle, target_files = self.task.target_files,
    files = self.baseline.files, baseline_score = self.baseline.score, evidence = self.evidence,
    best_score = self.best_score,
  }
  -- The baseline this cycle's candidates are proposed from: the last
  -- accepted candidate, else the original (the run model's tree).
  local last = self.accepted[#self.accepted]
  return { k = k, id = id, state = state, rec = rec, spans = { validations = {}, runs = {} },
    parent = last and tostring(last.id) or "original" }
end

-- Ends a failed cycle in the collector; removes its sandboxes when asked.
function Optimizer:fail_cycle(cy, message, remove)
  self.collector:end_cycle(cy.id, false, message)
  self:event { kind = "cycle", cycle = cy.k, parent = cy.parent, failed = tostring(message), spent = self:spent() }
  if remove then
    self.sandboxes:remove_all()
  end
end

-- Phase 1, baseline: a sandbox of the baseline, which goes through the
-- same validators as the candidates (they may build it) and is timed
-- again in this cycle beside them. Returns true, or nil, message when its
-- sandbox cannot be made.
function Optimizer:baseline_phase(cy)
  local dir, err = self:sandbox_of(format("cycle%d-baseline", cy.k), self.baseline.files, self.baseline.params)
  if not dir then
    return nil, err
  end
  cy.baseline_cand = sandbox.candidate(self.task, dir, "baseline", self.baseline.params)
  return true
end

-- One candidate through the task's validators; fills c.report, and
-- c.stage and c.evidence where it stopped. Returns whether it passed.
function Optimizer:validate_candidate(cy, c, cand)
  if #self.task.validators == 0 then
    return true
  end
  c.report = self:run_validators(cy, cand)
  if c.report.passed then
    return true
  end
  for _, r in ipairs(c.report.results) do
    if not r.passed and r.status ~= "skipped" then
      c.stage = r.name
      break
    end
  end
  c.evidence = evidence_of(c.report)
  return false
end

-- Phase 2, validate: the baseline and each well-formed candidate, each in
-- a sandbox of its own, through the validators, all at once (one after
-- another when not parallel). Marks c.passed on the candidates that pass;
-- sets cy.baseline_error when the baseline fails. Returns po.all's result.
function Optimizer:validate_phase(cy, candidates)
  local k, cycles = cy.k, self.task.budget.cycles
  local tasks = {}
  local finished, total = 0, 0
  for _, c in ipairs(candidates) do
    if not c.malformed then
      total = total + 1
    end
  end
  self:status("cycle %d of %d: validating %d candidates", k, cycles, total)
  local start = self.parallel and po.async or function(fn)
    fn() -- one after another: for comparisons and debugging
    return po.after(0)
  end
  if #self.task.validators > 0 then
    tasks[1] = start(function()
      local check = self:run_validators(cy, cy.baseline_cand)
      cy.baseline_report = check
      if not check.passed then
        cy.baseline_error = "the baseline fails its own validators: " .. evidence_of(check)
      end
    end)
  end
  for i, c in ipairs(candidates) do
    if not c.malformed then
      tasks[#tasks + 1] = start(function()
        local files = {}
        for path, text in pairs(self.baseline.files) do
          files[path] = text
        end
        for path, text in pairs(c.files or {}) do
          files[path] = text
        end
        local dir, err = self:sandbox_of(format("cycle%d-%d", k, i), files, c.params)
        if not dir then
          c.malformed, c.refused = err, true
          return
        end
        c.dir = dir
        c.cand = sandbox.candidate(self.task, dir, c.id, c.params)
        c.passed = self:validate_candidate(cy, c, c.cand)
        self:event(record.validated_event(cy, c))
        finished = finished + 1
        self:status("cycle %d of %d: %d of %d candidates validated", k, cycles, finished, total)
      end)
    end
  end
  return po.all(tasks)
end

-- Phase 3, time: once validation has finished, the candidates that passed
-- and the baseline, side by side (timing.lua). Fills each timed
-- candidate's c.stats, c.verdict, c.speedup, c.ci_low, c.ci_high, c.runs
-- and c.score (or c.stage and c.evidence when its benchmark fails).
-- Returns the baseline's statistics, or nil, message.
function Optimizer:time_phase(cy, candidates)
  local arms = { [0] = { id = "baseline", cand = cy.baseline_cand } }
  local timed = {}
  for _, c in ipairs(candidates) do
    if c.passed then
      timed[#timed + 1] = c
      arms[#arms + 1] = { id = c.id, cand = c.cand }
    end
  end
  local cycles = self.task.budget.cycles
  local where = not self.task.timing_executor and timing.cpu()
  self:status("cycle %d of %d: timing %d candidates and the baseline%s", cy.k, cycles, #timed,
    where and (" on cpu " .. where) or "")
  local res, err, spans = timing.run(self.task.objective, arms, {
    seed = (self.task.seed or 1) * 1000 + cy.k, executor = self.task.timing_executor,
    on_round = function(round, runs)
      self:status("cycle %d of %d: timing, round %d, %d runs", cy.k, cycles, round, runs)
    end,
  })
  cy.spans.runs = res and res.spans or spans or {}
  cy.cpu, cy.noise = res and res.cpu, res and res.noise
  if not res then
    return nil, err
  end
  local name = self.task.objective.validator.name
  for i, c in ipairs(timed) do
    local r = res.results[i]
    if r.failed then
      c.stage, c.evidence = name, r.failed
    else
      c.stats, c.verdict, c.speedup, c.ci_low, c.ci_high, c.runs, c.rule =
        r.stats, r.verdict, r.speedup, r.ci_low, r.ci_high, r.runs, r.rule
      c.score = self.task.score and self.task.score(c, c.report) or c.stats.median
    end
  end
  if self.task.objective.confirm ~= false then
    self:confirm_phase(cy, timed)
  end
  for _, c in ipairs(candidates) do
    if self.verbose then
      local change = record.describe_change(c, self.baseline.params)
      self:say("verbose", "  %s%s: %s", c.id, change and (" (" .. change .. ")") or "",
        c.malformed and "unusable" or M.describe_verdict(c))
    end
  end
  return res.baseline
end

-- Phase 3b, confirm: the candidates judged "faster", best score first,
-- each timed once more beside the baseline in fresh rounds (another seed)
-- until one is "faster" again, this time by more than min_effect (the
-- test with a margin: a gain at the edge of min_effect passes the cycle's
-- test about half the time and would not hold when timed later); it alone
-- can be accepted. A burst of load
-- that favoured a candidate over the baseline in one set of rounds rarely
-- recurs in the next, so this turns away most accepts a loaded machine
-- would otherwise cause; it only ever removes accepts, so the cycle's
-- false-accept bound still holds. Sets c.confirm on those it timed.
function Optimizer:confirm_phase(cy, timed)
  local faster = {}
  for _, c in ipairs(timed) do
    if c.verdict == "faster" then
      faster[#faster + 1] = c
    end
  end
  table.sort(faster, function(a, b) return self:better(a.score, b.score) end)
  for i, c in ipairs(faster) do
    self:status("cycle %d of %d: confirming %s", cy.k, self.task.budget.cycles, c.id)
    local res, err, spans = timing.run(self.task.objective,
      { [0] = { id = "baseline", cand = cy.baseline_cand }, { id = c.id, cand = c.cand } },
      { seed = (self.task.seed or 1) * 1000 + cy.k + 500 * i, executor = self.task.timing_executor, margin = true })
    for _, span in ipairs(res and res.spans or spans or {}) do
      cy.spans.runs[#cy.spans.runs + 1] = span
    end
    local r = res and res.results[1]
    c.confirm = r and not r.failed and { verdict = r.verdict, speedup = r.speedup, ci_low = r.ci_low,
      ci_high = r.ci_high, runs = r.runs, margin = r.margin } or { verdict = "failed", error = err or r.failed }
    if c.confirm.verdict == "faster" then
      return
    end
  end
end

-- Phase 4, select: the baseline's score; only a candidate "faster" than
-- this cycle's baseline (and so again when timed a second time, unless
-- objective.confirm = false) counts, and the best of those becomes the next
-- baseline. The best score so far is the best in the objective's
-- direction, whichever cycle measured it. Returns the accepted one, or nil.
function Optimizer:select_phase(cy, candidates, baseline_stats)
  -- The task's score function sees the baseline as it sees a candidate:
  -- its sandbox, its validation report and its timing.
  local base = cy.baseline_cand
  self.baseline.score = self.task.score and self.task.score({ id = "baseline", dir = base.dir, cand = base,
    params = base.params, stats = baseline_stats, report = cy.baseline_report }, cy.baseline_report)
    or baseline_stats.median
  cy.baseline_score = self.baseline.score
  if self.best_score == nil then
    self.best_score = self.baseline.score
    self.first_score = self.baseline.score
    self.original.score = self.baseline.score
    if self.searcher and self.baseline.params then
      self.searcher:observe(self.baseline.params, baseline_stats.median)
    end
  end
  local best
  for _, c in ipairs(candidates) do
    c.accepted = false
    local confirmed = self.task.objective.confirm == false or (c.confirm ~= nil and c.confirm.verdict == "faster")
    if c.verdict == "faster" and confirmed and (not best or self:better(c.score, best.score)) then
      best = c
    end
  end
  if self.searcher then
    for _, c in ipairs(candidates) do
      self.searcher:observe(c.params, c.stats and c.stats.median or nil)
    end
  end
  if not best then
    self.stall = self.stall + 1
    return nil
  end
  best.accepted = true
  self.baseline = { files = {}, score = best.score, params = best.params }
  for path, text in pairs(cy.state.files) do
    self.baseline.files[path] = text
  end
  for path, text in pairs(best.files or {}) do
    self.baseline.files[path] = text
  end
  if self:better(best.score, self.best_score) then
    self.best_score = best.score
  end
  self.accepted[#self.accepted + 1] = { cycle = cy.k, id = best.id, score = best.score, diff = best.diff,
    params = best.params, speedup = best.speedup, ci_low = best.ci_low, ci_high = best.ci_high, runs = best.runs,
    confirm = best.confirm }
  self.stall = 0
  return best
end

--- Runs one cycle; returns the accepted candidate or nil (nil, message
--- when the cycle fails on its baseline or a sandbox; raises when the
--- proposer or a validation task raises).
function Optimizer:run_cycle()
  local cy = self:begin_cycle()
  self:status("cycle %d of %d: proposing %d candidates", cy.k, self.task.budget.cycles, cy.state.n)
  local ok, candidates = pcall(propose.propose, self, cy.state)
  if not ok then
    self:fail_cycle(cy, tostring(candidates))
    error(candidates, 0)
  end
  cy.llm = propose.llm_failures(candidates)
  if cy.llm and cy.llm.failed == cy.llm.total then
    return self:llm_failed_cycle(cy)
  end
  if candidates[1] and candidates[1].llm_call then
    self.llm_answered = true
  end
  local started, berr = self:baseline_phase(cy)
  if not started then
    self:fail_cycle(cy, berr)
    return nil, berr
  end
  local done, err = self:validate_phase(cy, candidates)
  if not done then
    self:fail_cycle(cy, err, true)
    error(err, 0)
  end
  if cy.baseline_error then
    self:record_spans(cy)
    self:fail_cycle(cy, cy.baseline_error, true)
    return nil, cy.baseline_error
  end
  local baseline_stats, why = self:time_phase(cy, candidates)
  if not baseline_stats then
    self:record_spans(cy)
    self:fail_cycle(cy, why, true)
    return nil, why
  end
  local best = self:select_phase(cy, candidates, baseline_stats)
  self:pareto_phase(cy, candidates)
  self:record_phase(cy, candidates, best, baseline_stats)
  return best
end

--- Runs the optimization and returns a result table:
--- `{ best_score, baseline_score, improvement, accepted = {...}, cycles,
---    stopped = reason, patch = path | nil, applied = bool, events = path,
---    store = dir, spent = { usd, tokens } }`.
function Optimizer:run()
  local task = self.task
  local stopped
  self:event(record.start_event(self))
  while true do
    stopped = now_budget_exceeded(self)
    if stopped then
      break
    end
    if task.stop.target and self.best_score and not self:better(task.stop.target, self.best_score) then
      stopped = "target"
      break
    end
    if task.stop.stall_cycles and self.stall >= task.stop.stall_cycles then
      stopped = "stall"
      break
    end
    if self.searcher and self.searcher:exhausted() then
      stopped = "space exhausted"
      break
    end
    local _, err = self:run_cycle()
    if err then
      stopped = "error: " .. err
      break
    end
  end
  local res = self:finish(stopped)
  res.pareto = task.objective.pareto and self.pareto or nil
  if self.publisher then
    res.published = self.publisher:stats()
    self.publisher:close()
  end
  local llm = self.llm_unanswered
  if llm then
    return nil, "po.optimizer: " .. llm.line, llm.code or "ELLM"
  end
  return res
end

--- The directory poengine keeps its stores in: $POENGINE_HOME, else
--- $XDG_CACHE_HOME/poengine, else ~/.cache/poengine (as po.store).
function M.home()
  return assert(po.store.default_dir())
end

--- Creates an optimizer for a task. Raises on a mistake in the task or the
--- options; returns nil, message, code when the run cannot start (no such
--- workdir, a target file, a store or a log that cannot be read or
--- written, a checkpoint it cannot resume from). It changes nothing
--- global unless asked: `global_collector = true` makes the run's
--- collector po.metrics.global(), where the router records its calls.
---@param task table
---@param opts? { router?: table, collector?: table, global_collector?: boolean, output?: string, resume?: boolean, quiet?: boolean, verbose?: boolean, progress?: fun(line: string), status?: fun(line: string), keep_sandboxes?: boolean, parallel?: boolean, publish?: table|string }
---@return table|nil optimizer, string? message, string? code
function M.new(task, opts)
  task = task_mod.check(task)
  opts = opts or {}
  -- Where the run's events are also published: the option, the task's
  -- field, else $POENGINE_PUBLISH (a URL).
  local pub = opts.publish or task.publish
  if pub == nil and (os.getenv("POENGINE_PUBLISH") or "") ~= "" then
    pub = os.getenv("POENGINE_PUBLISH")
  end
  if pub ~= nil then
    pub = publish.check(pub, "po.optimizer", 2)
  end
  opts.router = opts.router or task.router
  if (task.method == "llm-rewrite" or task.method == "llm-diff") and not opts.router then
    error("po.optimizer: method '" .. task.method .. "' needs a router (opts.router or task.router)", 2)
  end
  local workdir, werr, wcode = sandbox.absolute(task.workdir)
  if not workdir then
    return nil, "po.optimizer: task.workdir: " .. werr, wcode
  end
  task.workdir = workdir
  local files, ferr, fcode = sandbox.read_files(workdir, task.target_files)
  if not files then
    return nil, "po.optimizer: cannot read the target files: " .. ferr, fcode
  end
  local out_dir = opts.output
  if not out_dir then
    local home, herr, hcode = po.store.default_dir()
    if not home then
      return nil, "po.optimizer: " .. tostring(herr), hcode
    end
    out_dir = home .. "/runs/" .. task.id
  end
  local made = po.run_sync { argv = { "mkdir", "-p", out_dir .. "/sandboxes", sandbox.root(task, out_dir) } }
  if made.status ~= "ok" then
    return nil, "po.optimizer: cannot make the run's directory " .. out_dir .. ": " .. (made.stderr or made.status),
      "EIO"
  end
  local self = setmetatable({
    task = task, router = opts.router, out_dir = out_dir, quiet = opts.quiet, verbose = opts.verbose,
    progress = opts.progress, on_status = opts.status, parallel = opts.parallel ~= false,
    keep_sandboxes = opts.keep_sandboxes or task.keep_sandboxes,
    cycle = 0, accepted = {}, stall = 0, pareto = {}, malformed = 0, evidence = {}, started = po.now(),
    prior_spent = { usd = 0, tokens = 0 },
    original = { files = files, params = task.baseline_params },
    baseline = { files = files, params = task.baseline_params },
    sandboxes = sandbox.new(task, sandbox.root(task, out_dir)),
  }, Optimizer)
  if task.method == "search" then
    self.searcher = search.new { space = task.space, strategy = task.strategy, seed = task.seed,
      direction = task.objective.direction }
    if task.baseline_params then
      -- The baseline is measured every cycle: never propose it, and let
      -- hill climbing start from it.
      self.searcher:mark(task.baseline_params)
    end
  end
  local opened, err, code = checkpoint.open(self, opts)
  if not opened then
    return nil, err, code
  end
  if pub then
    self.publisher = publish.open(pub, out_dir:match("([^/]+)/*$"))
  end
  if opts.global_collector then
    po.metrics.set_global(self.collector)
  end
  return self
end

--- Creates an optimizer and runs it: `po.optimizer.run(task, opts)`;
--- nil, message, code when it cannot start (see new).
function M.run(task, opts)
  local self, err, code = M.new(task, opts)
  if not self then
    return nil, err, code
  end
  return self:run()
end

return M
