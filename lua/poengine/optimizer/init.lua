--- The optimization cycle: propose → apply in a sandbox → validate in
--- parallel → measure → accept. One file that a user can read in one sitting
--- and copy into a flow of their own.
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
--- sandbox (a git worktree when the workdir is a git repository, else a copy)
--- and runs the task's validators as a cascade on the shared pool, all
--- candidates at once; those that pass are benchmarked one at a time beside
--- the baseline, measured again in the same cycle; a candidate is accepted
--- only when it is faster by the benchmark's noise-aware rule and its score
--- beats the best so far. The best accepted one becomes the next baseline.
--- Every cycle goes through the collector, every candidate into the event
--- log, and a checkpoint after each cycle lets `resume = true` continue.
local po = require "poengine"
local diff = require "poengine.optimizer.diff"
local prompts = require "poengine.optimizer.prompts"
local search = require "poengine.optimizer.search"
local buffer = require "string.buffer"

local M = {}
M.diff, M.prompts, M.search = diff, prompts, search

local format, concat = string.format, table.concat

local CHECKPOINT_VERSION = 1

---------------------------------------------------------------------------
-- The task

local TASK_FIELDS = {
  id = "string", description = "string", workdir = "string", target_files = "table", objective = "table",
  validators = "table", method = true, candidates_per_cycle = "number", budget = "table", stop = "table",
  apply = "boolean", space = "table", strategy = "string", seed = "number", prompts = "table",
  model = "string", apply_params = "function", baseline_params = "table", score = "function",
  keep_sandboxes = "boolean",
  max_tokens = "number", temperature = "number", router = "table",
}

--- Checks a task and fills in defaults; raises naming the field on a
--- mistake (a task is code the user wrote). Returns the checked task.
---@param task table
function M.check_task(task)
  if type(task) ~= "table" then
    error("po.optimizer: task must be a table, got " .. type(task), 3)
  end
  for k, v in pairs(task) do
    local want = TASK_FIELDS[k]
    if not want then
      error("po.optimizer: unknown task field '" .. tostring(k) .. "'", 3)
    elseif want ~= true and type(v) ~= want then
      error(format("po.optimizer: task.%s must be a %s, got %s", k, want, type(v)), 3)
    end
  end
  local t = {}
  for k, v in pairs(task) do
    t[k] = v
  end
  if not t.id or not t.id:match("^[%w_.%-]+$") then
    error("po.optimizer: task.id must be a name of letters, digits, '_', '.' or '-'", 3)
  end
  if not t.workdir then
    error("po.optimizer: task.workdir is required", 3)
  end
  if not t.target_files or #t.target_files == 0 then
    error("po.optimizer: task.target_files must list at least one file", 3)
  end
  for i, path in ipairs(t.target_files) do
    local norm, why = diff.check_path(path)
    if not norm then
      error(format("po.optimizer: task.target_files[%d]: %s", i, why), 3)
    end
    t.target_files[i] = norm
  end
  local o = t.objective
  if not o or type(o.validator) ~= "table" or o.validator.run == nil then
    error("po.optimizer: task.objective.validator must be a validator (po.validate.benchmark{...})", 3)
  end
  o.direction = o.direction or "min"
  if o.direction ~= "min" and o.direction ~= "max" then
    error("po.optimizer: task.objective.direction must be 'min' or 'max'", 3)
  end
  t.validators = t.validators or {}
  t.method = t.method or "llm-rewrite"
  local m = t.method
  if type(m) ~= "function" and m ~= "llm-rewrite" and m ~= "llm-diff" and m ~= "search" then
    error("po.optimizer: task.method must be 'llm-rewrite', 'llm-diff', 'search' or a function", 3)
  end
  if m == "search" and not t.space then
    error("po.optimizer: task.space is required with method 'search'", 3)
  end
  if m == "search" and not t.apply_params then
    -- By default a point of the space reaches the validators as params.json
    -- in the sandbox (function validators also get candidate.params).
    t.apply_params = function(params, dir)
      local r = po.batch.write({ { path = "params.json", content = po.json.encode(params, { sort_keys = true }) } },
        { root = dir })
      assert(r[1].ok, r[1].err)
    end
  end
  t.candidates_per_cycle = t.candidates_per_cycle or 4
  t.budget = t.budget or {}
  t.budget.cycles = t.budget.cycles or 10
  t.stop = t.stop or {}
  t.apply = t.apply or false
  return t
end

--- Loads a task file (a Lua file returning a task table); relative paths in
--- the task (workdir) are taken from the file's directory.
---@param path string
function M.load_task(path)
  local chunk, err = loadfile(path)
  if not chunk then
    return nil, err, "ETASK"
  end
  local ok, task = pcall(chunk)
  if not ok then
    return nil, "task file " .. path .. " failed: " .. tostring(task), "ETASK"
  end
  if type(task) ~= "table" then
    return nil, "task file " .. path .. " must return a table, got " .. type(task), "ETASK"
  end
  local dir = path:match("^(.*)/[^/]*$") or "."
  if task.workdir and task.workdir:sub(1, 1) ~= "/" then
    task.workdir = dir .. "/" .. task.workdir
  end
  return task
end

---------------------------------------------------------------------------
-- Files, sandboxes and processes

local function sh_quote(s)
  return "'" .. tostring(s):gsub("'", "'\\''") .. "'"
end

local function run(argv, cwd)
  local r = po.run_sync { argv = argv, cwd = cwd, timeout = 120 }
  if r.status ~= "ok" then
    return nil, format("%s failed (%s): %s", argv[1], r.error or r.status, (r.stderr or ""):sub(1, 500))
  end
  return r
end

local function read_files(root, paths)
  local results = po.batch.read(paths, { root = root })
  local files = {}
  for i, r in ipairs(results) do
    if r.err then
      if r.code ~= "ENOENT" then
        return nil, paths[i] .. ": " .. r.err
      end
    else
      files[paths[i]] = r.content
    end
  end
  return files
end

local function write_files(root, files, sync)
  local list = {}
  for path, content in pairs(files) do
    list[#list + 1] = { path = path, content = content }
  end
  table.sort(list, function(a, b) return a.path < b.path end)
  for i, r in ipairs(po.batch.write(list, { root = root, sync = sync })) do
    if r.err then
      return nil, list[i].path .. ": " .. r.err, r.code
    end
  end
  return #list
end

-- True when dir is the top of a git work tree (a subdirectory of some
-- repository is copied instead: a worktree of the whole repository per
-- candidate would be far more than the task needs).
local function is_git_top(dir)
  local r = po.run_sync { argv = { "git", "-C", dir, "rev-parse", "--show-toplevel" }, timeout = 30 }
  return r.status == "ok" and r.stdout:gsub("%s+$", "") == dir
end

local function absolute(dir)
  local r = po.run_sync { argv = { "realpath", "--", dir }, timeout = 30 }
  if r.status ~= "ok" then
    return nil, "no such directory: " .. dir
  end
  return (r.stdout:gsub("%s+$", ""))
end

local Sandboxes = {}
Sandboxes.__index = Sandboxes

-- A sandbox is a directory holding the workdir as the baseline has it, with
-- a candidate's files written over it.
local function new_sandboxes(task, root)
  local self = setmetatable({ task = task, root = root, made = {} }, Sandboxes)
  self.git = is_git_top(task.workdir)
  return self
end

function Sandboxes:make(name, files)
  local dir = self.root .. "/" .. name
  po.run_sync { argv = { "rm", "-rf", dir } }
  local ok, err
  if self.git then
    -- A detached worktree of HEAD; the baseline's target files (which may
    -- hold accepted, uncommitted changes) are written over it below.
    ok, err = run { "git", "-C", self.task.workdir, "worktree", "add", "--detach", "--force", dir, "HEAD" }
    if ok then
      self.made[#self.made + 1] = { dir = dir, git = true }
    end
  else
    ok, err = run { "cp", "-a", self.task.workdir .. "/.", dir .. "/" }
    if not ok then
      po.run_sync { argv = { "mkdir", "-p", dir } }
      ok, err = run { "cp", "-a", self.task.workdir .. "/.", dir .. "/" }
    end
    if ok then
      self.made[#self.made + 1] = { dir = dir }
    end
  end
  if not ok then
    return nil, "cannot make sandbox " .. name .. ": " .. err
  end
  local written, werr = write_files(dir, files)
  if not written then
    return nil, werr
  end
  return dir
end

function Sandboxes:remove_all()
  for _, s in ipairs(self.made) do
    if s.git then
      po.run_sync { argv = { "git", "-C", self.task.workdir, "worktree", "remove", "--force", s.dir } }
    end
    po.run_sync { argv = { "rm", "-rf", s.dir } }
  end
  self.made = {}
end

---------------------------------------------------------------------------
-- Proposing candidates

-- A candidate: { id =, files = { [path] = text } (changed target files) |
-- params = {...}, diff = text, malformed = reason, reply = text }.

local function llm_request(self, state, i)
  local builder = self.task.prompts and self.task.prompts[self.task.method == "llm-diff" and "diff" or "rewrite"]
    or (self.task.method == "llm-diff" and prompts.diff or prompts.rewrite)
  local messages = builder(state, i)
  -- Each candidate of a cycle asks for a different answer (the seed and
  -- the note differ), so they are not one cached reply four times.
  messages[#messages].content = messages[#messages].content
    .. format("\n\n(Proposal %d of %d: try a different idea from the other proposals.)", i, state.n)
  return {
    model = self.task.model,
    messages = messages,
    temperature = self.task.temperature or 0.7,
    max_tokens = self.task.max_tokens or 4096,
    seed = i,
    -- Never sent nor part of the cache key; a "lua" provider can read it.
    metadata = { task = self.task.id, cycle = state.cycle, candidate = i },
  }
end

-- kind: "diff" (the reply holds a unified diff) or "rewrite" (whole files).
local function candidate_from_reply(self, state, id, text, kind)
  local c = { id = id, reply = text }
  if kind == "diff" then
    local d, why = prompts.extract_diff(text)
    local patches = d and diff.parse(d)
    if not patches then
      c.malformed = why or select(2, diff.parse(d))
      return c
    end
    local ok, perr = diff.check_paths(patches, self.task.target_files)
    if not ok then
      c.malformed = "the diff was refused: " .. perr
      c.refused = true
      return c
    end
    c.files = {}
    for _, p in ipairs(patches) do
      local new, aerr = diff.apply(state.files[p.path], p)
      if new == nil then
        c.malformed = aerr
        return c
      end
      if new == false then
        c.malformed = p.path .. ": the diff deletes a target file"
        return c
      end
      c.files[p.path] = new
    end
  else
    local files, why = prompts.parse_rewrite(text, self.task.target_files)
    if not files then
      c.malformed = why
      return c
    end
    c.files = files
  end
  local parts = {}
  for _, path in ipairs(self.task.target_files) do
    if c.files[path] and c.files[path] ~= state.files[path] then
      parts[#parts + 1] = diff.unified(path, state.files[path] or "", c.files[path])
    end
  end
  c.diff = concat(parts)
  if c.diff == "" then
    c.malformed = "the reply changes nothing"
  end
  return c
end

function M._propose(self, state)
  local n = state.n
  local method = self.task.method
  if method == "search" then
    local points = self.searcher:propose(n)
    local out = {}
    for i, p in ipairs(points) do
      out[i] = { id = format("c%d.%d", state.cycle, i), params = p, diff = "params " .. self.searcher:key(p) }
    end
    return out
  elseif type(method) == "function" then
    local ok, list = pcall(method, state)
    if not ok or type(list) ~= "table" then
      error("po.optimizer: the task's propose function failed: " .. tostring(list), 0)
    end
    local out = {}
    for i, c in ipairs(list) do
      local id = format("c%d.%d", state.cycle, i)
      if type(c) == "string" then
        out[i] = candidate_from_reply(self, state, id, c, "rewrite")
      elseif type(c) == "table" and (c.files or c.params or c.diff) then
        if c.diff and not c.files then
          out[i] = candidate_from_reply(self, state, id, c.diff, "diff")
        else
          out[i] = { id = id, files = c.files, params = c.params, diff = c.params and ("params " .. po.json.encode(c.params, { sort_keys = true })) or "" }
          if c.files then
            local parts = {}
            for _, path in ipairs(self.task.target_files) do
              if c.files[path] then
                parts[#parts + 1] = diff.unified(path, state.files[path] or "", c.files[path])
              end
            end
            out[i].diff = concat(parts)
            for path in pairs(c.files) do
              local ok2, why = diff.check_path(path, self.task.target_files)
              if not ok2 then
                out[i] = { id = id, malformed = "refused: " .. why, refused = true }
                break
              end
            end
          end
        end
      else
        out[i] = { id = id, malformed = "the propose function returned a " .. type(c) .. " candidate" }
      end
    end
    return out
  end
  -- llm-rewrite / llm-diff: n requests at once, through the router and its cache.
  local futures = {}
  for i = 1, n do
    futures[i] = self.router:complete_async(llm_request(self, state, i))
  end
  local out = {}
  for i, f in ipairs(futures) do
    local id = format("c%d.%d", state.cycle, i)
    local resp, err, code = f:wait()
    if resp then
      out[i] = candidate_from_reply(self, state, id, resp.text or "", method == "llm-diff" and "diff" or "rewrite")
    else
      out[i] = { id = id, malformed = "the LLM call failed: " .. tostring(err), code = code, llm_failed = true }
      if code == "EBUDGET" then
        self.budget_hit = "usd"
      end
    end
  end
  return out
end

---------------------------------------------------------------------------
-- Validation, measurement, selection

local Lock = {}
Lock.__index = Lock

-- One benchmark at a time: candidates measured side by side on a shared
-- machine would slow each other down and blur the comparison.
local function new_lock()
  return setmetatable({ held = false, queue = {} }, Lock)
end

function Lock:acquire()
  if not self.held then
    self.held = true
    return
  end
  local f = po.future()
  self.queue[#self.queue + 1] = f
  f:wait()
end

function Lock:release()
  local nxt = table.remove(self.queue, 1)
  if nxt then
    nxt:resolve(true)
  else
    self.held = false
  end
end

local function better(direction, a, b)
  if type(a) == "table" then
    for i = 1, math.max(#a, #b) do
      local x, y = a[i], b[i]
      if x ~= y then
        if x == nil or y == nil then
          return y == nil
        end
        return better(direction, x, y)
      end
    end
    return false
  end
  if direction == "max" then
    return a > b
  end
  return a < b
end
M.better = better

--- A score for people: a number with 4 significant digits, a tuple as (a, b).
function M.format_score(score)
  if type(score) == "table" then
    local parts = {}
    for i, v in ipairs(score) do
      parts[i] = M.format_score(v)
    end
    return "(" .. concat(parts, ", ") .. ")"
  elseif type(score) == "number" then
    return format("%.4g", score)
  end
  return tostring(score)
end

local function evidence_of(report)
  local parts = {}
  for _, r in ipairs(report.results or {}) do
    if not r.passed and r.status ~= "skipped" then
      local text = concat(r.errors or {}, "\n")
      if text == "" then
        text = (r.stderr ~= "" and r.stderr) or r.stdout or r.status
      end
      parts[#parts + 1] = r.name .. " (" .. r.status .. "):\n" .. prompts.truncate(text, 1200)
    end
  end
  return concat(parts, "\n\n")
end

-- Runs the cascade and the benchmark for one candidate; fills c.report,
-- c.stage (where it stopped), c.stats, c.verdict, c.score.
-- What po.validate gets for a sandbox: its directory and its target files
-- ({dir}, {file} and {files} in argv validators).
local function validation_candidate(task, dir, id, params)
  local cand = { dir = dir, id = id, params = params, files = {} }
  for i, path in ipairs(task.target_files) do
    cand.files[i] = dir .. "/" .. path
  end
  if #cand.files == 1 then
    cand.file = cand.files[1]
  end
  return cand
end

-- Times a sandbox with the objective's benchmark validator, one at a time
-- (the lock), and counts it; returns the validator's result and the report.
local function measure_objective(self, cand, lock)
  lock:acquire()
  local ok, bench = pcall(po.validate.run, { self.task.objective.validator }, cand)
  lock:release()
  if not ok then
    error(bench, 0)
  end
  self.validation_time = self.validation_time + bench.duration
  self.validation_count = self.validation_count + 1
  return bench.results[1], bench
end

local function validate_candidate(self, c, dir, baseline_fut, lock)
  c.dir = dir
  local cand = validation_candidate(self.task, dir, c.id, c.params)
  if #self.task.validators > 0 then
    c.report = po.validate.run(self.task.validators, cand, { cascade = true })
    self.validation_time = self.validation_time + c.report.duration
    self.validation_count = self.validation_count + #c.report.results
    if not c.report.passed then
      for _, r in ipairs(c.report.results) do
        if not r.passed and r.status ~= "skipped" then
          c.stage = r.name
          break
        end
      end
      c.evidence = evidence_of(c.report)
      return
    end
  end
  local r, bench = measure_objective(self, cand, lock)
  c.bench = r
  if not r.passed then
    c.stage = r.name
    c.evidence = evidence_of(bench)
    return
  end
  c.stats = r.details
  if not (c.stats and c.stats.median) then
    c.stage = r.name
    c.evidence = "the objective validator reported no median"
    return
  end
  local baseline_stats = baseline_fut:wait()
  if not baseline_stats then
    return -- the cycle fails on its baseline
  end
  c.verdict, c.speedup = po.validate.compare(c.stats, baseline_stats, {
    noise = self.task.objective.noise, higher_is_better = self.task.objective.direction == "max" })
  c.score = self.task.score and self.task.score(c, c.report) or c.stats.median
end

---------------------------------------------------------------------------
-- The run

local Optimizer = {}
Optimizer.__index = Optimizer

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
  self.events:write(po.json.encode(record, { sort_keys = true }), "\n")
  self.events:flush()
end

function Optimizer:checkpoint()
  local state = {
    version = CHECKPOINT_VERSION,
    task = self.task.id,
    cycle = self.cycle,
    baseline = self.baseline,
    original = self.original,
    best_score = self.best_score,
    accepted = self.accepted,
    stall = self.stall,
    evidence = self.evidence,
    spent = self:spent(),
    search = self.searcher and { seen = self.searcher.seen, proposed = self.searcher.proposed,
      best = self.searcher.best, current = self.searcher.current, next_index = self.searcher.next_index },
  }
  local ok, err, code = self.checkpoints:append(string.char(CHECKPOINT_VERSION) .. buffer.encode(state), 3)
  if not ok then
    return nil, err, code
  end
  return true
end

local function load_checkpoint(log)
  local last = log:tail(1)
  if not last or #last == 0 then
    return nil
  end
  local bytes = last[1]
  if type(bytes) ~= "string" or bytes:byte(1) ~= CHECKPOINT_VERSION then
    return nil, "the checkpoint was written by an unknown version"
  end
  return buffer.decode(bytes:sub(2))
end

function Optimizer:record_cycle(cycle_id, candidates, accepted_c)
  local col = self.collector
  col:record_validation(cycle_id, self.validation_time, self.validation_count)
  col:record_file_operation(cycle_id, self.file_operations)
  if self.best_score then
    col:record_score(cycle_id, accepted_c and accepted_c.score or self.baseline.score, self.best_score)
  end
end

--- Runs one cycle; returns the accepted candidate or nil.
function Optimizer:run_cycle()
  self.cycle = self.cycle + 1
  local k = self.cycle
  local cycle_id = format("%s-%d", self.task.id, k)
  local col = self.collector
  assert(col:start_cycle(cycle_id, { task = self.task.id, cycle = k, method = tostring(self.task.method) }))
  self.validation_time, self.validation_count, self.file_operations = 0, 0, 0
  local state = {
    task = self.task, cycle = k, n = self.task.candidates_per_cycle, target_files = self.task.target_files,
    files = self.baseline.files, baseline_score = self.baseline.score, evidence = self.evidence,
    best_score = self.best_score,
  }
  self:status("cycle %d of %d: proposing %d candidates", k, self.task.budget.cycles, state.n)
  local ok, candidates = pcall(M._propose, self, state)
  if not ok then
    col:end_cycle(cycle_id, false, tostring(candidates))
    error(candidates, 0)
  end

  local sandboxes = self.sandboxes
  local base_dir, berr = sandboxes:make(format("cycle%d-baseline", k), self.baseline.files)
  if not base_dir then
    col:end_cycle(cycle_id, false, berr)
    return nil, berr
  end
  if self.task.apply_params and self.baseline.params then
    self.task.apply_params(self.baseline.params, base_dir)
  end
  self.file_operations = self.file_operations + #self.task.target_files

  -- The baseline goes through the same validators (which may build it),
  -- then is measured again in this cycle, all beside the candidates: only
  -- the benchmarks take turns (the lock).
  local lock = new_lock()
  local base_cand = validation_candidate(self.task, base_dir, "baseline", self.baseline.params)
  local function measure_baseline()
    if #self.task.validators > 0 then
      local check = po.validate.run(self.task.validators, base_cand, { cascade = true })
      self.validation_time = self.validation_time + check.duration
      self.validation_count = self.validation_count + #check.results
      if not check.passed then
        return nil, "the baseline fails its own validators: " .. evidence_of(check)
      end
    end
    local r, bench = measure_objective(self, base_cand, lock)
    if not r.passed or not (r.details and r.details.median) then
      return nil, "the baseline failed its benchmark: " .. evidence_of(bench)
    end
    return r.details
  end
  local baseline_fut = self.parallel and po.async(measure_baseline) or po.future()
  if not self.parallel then
    baseline_fut:resolve(measure_baseline())
  end

  local tasks = {}
  local finished, total = 0, 0
  for _, c in ipairs(candidates) do
    if not c.malformed then
      total = total + 1
    end
  end
  self:status("cycle %d of %d: validating %d candidates", k, self.task.budget.cycles, total)
  for i, c in ipairs(candidates) do
    if not c.malformed then
      local start = self.parallel and po.async or function(fn)
        fn() -- one candidate after another: for comparisons and debugging
        return po.after(0)
      end
      tasks[#tasks + 1] = start(function()
        local files = {}
        for path, text in pairs(self.baseline.files) do
          files[path] = text
        end
        for path, text in pairs(c.files or {}) do
          files[path] = text
        end
        local dir, err = sandboxes:make(format("cycle%d-%d", k, i), files)
        if not dir then
          c.malformed, c.refused = err, true
          return
        end
        self.file_operations = self.file_operations + #self.task.target_files
        if c.params and self.task.apply_params then
          self.task.apply_params(c.params, dir)
        end
        validate_candidate(self, c, dir, baseline_fut, lock)
        finished = finished + 1
        self:status("cycle %d of %d: %d of %d candidates validated", k, self.task.budget.cycles, finished, total)
        if self.verbose then
          self:say("verbose", "  %s: %s", c.id, c.verdict and (c.verdict .. format(" (%.2fx)", c.speedup or 0))
            or ("stopped at " .. tostring(c.stage)))
        end
      end)
    end
  end
  local done, err = po.all(tasks)
  if not done then
    col:end_cycle(cycle_id, false, err)
    sandboxes:remove_all()
    error(err, 0)
  end
  local baseline_stats, why = baseline_fut:wait()
  if not baseline_stats then
    col:end_cycle(cycle_id, false, why)
    sandboxes:remove_all()
    return nil, why
  end
  self.baseline.score = self.task.score and self.task.score({ stats = baseline_stats }, nil) or baseline_stats.median
  if self.best_score == nil then
    self.best_score = self.baseline.score
    self.first_score = self.baseline.score
    self.original.score = self.baseline.score
    if self.searcher and self.baseline.params then
      self.searcher:observe(self.baseline.params, baseline_stats.median)
    end
  end

  -- Selection: only a candidate faster than this cycle's baseline by the
  -- noise-aware rule counts; the best of those becomes the next baseline.
  local best
  for _, c in ipairs(candidates) do
    c.accepted = false
    if c.verdict == "faster" and (not best or better(self.task.objective.direction, c.score, best.score)) then
      best = c
    end
  end
  if self.searcher then
    for _, c in ipairs(candidates) do
      self.searcher:observe(c.params, c.stats and c.stats.median or nil)
    end
  end

  -- Evidence for the next cycle and the event log.
  local evidence = {}
  local malformed = 0
  for _, c in ipairs(candidates) do
    if c.malformed then
      malformed = malformed + 1
      evidence[#evidence + 1] = { label = c.id .. ": the reply could not be used", text = c.malformed }
    elseif c.evidence then
      evidence[#evidence + 1] = { label = c.id .. ": failed at " .. tostring(c.stage), text = c.evidence }
    elseif c.stats then
      evidence[#evidence + 1] = { label = c.id .. ": benchmark",
        text = format("median %.3g beside the baseline's %.3g (%s, %.2fx)", c.stats.median,
          baseline_stats.median, c.verdict, c.speedup or 0) }
    end
  end
  if best then
    best.accepted = true
    self.baseline = { files = {}, score = best.score, params = best.params }
    for path, text in pairs(state.files) do
      self.baseline.files[path] = text
    end
    for path, text in pairs(best.files or {}) do
      self.baseline.files[path] = text
    end
    self.best_score = best.score
    self.accepted[#self.accepted + 1] = { cycle = k, id = best.id, score = best.score, diff = best.diff,
      params = best.params, speedup = best.speedup }
    self.stall = 0
  else
    self.stall = self.stall + 1
  end
  self.evidence = evidence
  self.malformed = self.malformed + malformed

  for _, c in ipairs(candidates) do
    local results = {}
    for _, r in ipairs((c.report and c.report.results) or {}) do
      results[#results + 1] = { name = r.name, status = r.status, passed = r.passed, duration = r.duration,
        errors = r.errors }
    end
    if c.bench then
      results[#results + 1] = { name = c.bench.name, status = c.bench.status, passed = c.bench.passed,
        duration = c.bench.duration, errors = c.bench.errors }
    end
    self:event {
      cycle = k, candidate = c.id, diff = c.diff, params = c.params, malformed = c.malformed,
      stage = c.stage, results = results, score = c.score, median = c.stats and c.stats.median,
      baseline = baseline_stats.median, verdict = c.verdict, speedup = c.speedup, accepted = c.accepted,
    }
  end

  self:record_cycle(cycle_id, candidates, best)
  col:end_cycle(cycle_id, true)
  if not self.keep_sandboxes then
    sandboxes:remove_all()
  end
  local spent = self:spent()
  self:say("info", "cycle %d of %d: %d candidates, %d validated, %s; best score %s (baseline %s); spent $%.4f, %d tokens",
    k, self.task.budget.cycles, #candidates, #candidates - malformed,
    best and ("accepted " .. best.id .. format(" (%.2fx)", best.speedup or 0)) or "none accepted",
    M.format_score(self.best_score), M.format_score(baseline_stats.median), spent.usd, spent.tokens)
  self:checkpoint()
  return best
end

--- Runs the optimization and returns a result table:
--- `{ best_score, baseline_score, improvement, accepted = {...}, cycles,
---    stopped = reason, patch = path | nil, applied = bool, events = path,
---    store = dir, spent = { usd, tokens } }`.
function Optimizer:run()
  local task = self.task
  local stopped
  while true do
    stopped = now_budget_exceeded(self)
    if stopped then
      break
    end
    if task.stop.target and self.best_score and not better(task.objective.direction, task.stop.target, self.best_score) then
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
  return self:finish(stopped)
end

-- The original and the final best, measured once more side by side, so the
-- improvement reported is a comparison made in one run, not figures from
-- different cycles.
function Optimizer:final_comparison()
  local task = self.task
  local orig_dir = self.sandboxes:make("final-original", self.original.files)
  local best_dir = orig_dir and self.sandboxes:make("final-best", self.baseline.files)
  if not (orig_dir and best_dir) then
    return nil
  end
  if task.apply_params then
    if self.original.params then
      task.apply_params(self.original.params, orig_dir)
    end
    if self.baseline.params then
      task.apply_params(self.baseline.params, best_dir)
    end
  end
  local function measure(dir, id, params)
    local cand = validation_candidate(task, dir, id, params)
    if #task.validators > 0 and not po.validate.run(task.validators, cand, { cascade = true }).passed then
      return { passed = false }
    end
    return po.validate.run({ task.objective.validator }, cand).results[1]
  end
  local a = measure(orig_dir, "original", self.original.params)
  local b = measure(best_dir, "best", self.baseline.params)
  if not self.keep_sandboxes then
    self.sandboxes:remove_all()
  end
  if not (a.passed and b.passed and a.details and b.details and a.details.median and b.details.median) then
    return nil
  end
  local verdict, speedup = po.validate.compare(b.details, a.details, {
    noise = task.objective.noise, higher_is_better = task.objective.direction == "max" })
  return { original = a.details.median, best = b.details.median, verdict = verdict, speedup = speedup }
end

function Optimizer:finish(stopped)
  local task = self.task
  local result = {
    task = task.id, cycles = self.cycle, stopped = stopped, best_score = self.best_score,
    baseline_score = self.first_score, accepted = self.accepted, events = self.events_path,
    store = self.out_dir .. "/store", out_dir = self.out_dir, spent = self:spent(), malformed = self.malformed,
    collector = self.collector, router_stats = self.router and self.router.stats and self.router:stats() or nil,
  }
  if self.first_score and self.best_score and self.best_score ~= 0 then
    result.improvement = task.objective.direction == "min" and self.first_score / self.best_score
      or self.best_score / self.first_score
  end
  local parts = {}
  for _, path in ipairs(task.target_files) do
    local a, b = self.original.files[path] or "", self.baseline.files[path] or ""
    if a ~= b then
      parts[#parts + 1] = diff.unified(path, a, b)
    end
  end
  local patch = concat(parts)
  if #self.accepted > 0 then
    if task.apply and patch ~= "" then
      local changed = {}
      for _, path in ipairs(task.target_files) do
        if self.original.files[path] ~= self.baseline.files[path] then
          changed[path] = self.baseline.files[path]
        end
      end
      local ok, err = write_files(task.workdir, changed, true)
      if not ok then
        result.apply_error = err
      else
        result.applied = true
      end
    end
    if patch ~= "" then
      result.patch = self.out_dir .. "/best.patch"
      write_files(self.out_dir, { ["best.patch"] = patch }, true)
    end
    if self.baseline.params then
      result.best_params = self.baseline.params
    end
    result.final = self:final_comparison()
  end
  self.events:close()
  return result
end

--- The directory poengine keeps its stores in: $POENGINE_HOME, else
--- $XDG_CACHE_HOME/poengine, else ~/.cache/poengine (as po.store).
function M.home()
  return assert(po.store.default_dir())
end

--- Creates an optimizer for a task.
---@param task table
---@param opts? { router?: table, collector?: table, output?: string, resume?: boolean, quiet?: boolean, verbose?: boolean, progress?: fun(line: string), status?: fun(line: string), keep_sandboxes?: boolean, parallel?: boolean }
function M.new(task, opts)
  task = M.check_task(task)
  opts = opts or {}
  local workdir, werr = absolute(task.workdir)
  if not workdir then
    error("po.optimizer: task.workdir: " .. werr, 2)
  end
  task.workdir = workdir
  opts.router = opts.router or task.router
  if (task.method == "llm-rewrite" or task.method == "llm-diff") and not opts.router then
    error("po.optimizer: method '" .. task.method .. "' needs a router (opts.router or task.router)", 2)
  end
  local out_dir = opts.output or (M.home() .. "/runs/" .. task.id)
  po.run_sync { argv = { "mkdir", "-p", out_dir .. "/sandboxes" } }
  local self = setmetatable({
    task = task, router = opts.router, out_dir = out_dir, quiet = opts.quiet, verbose = opts.verbose,
    progress = opts.progress, on_status = opts.status, parallel = opts.parallel ~= false, keep_sandboxes = opts.keep_sandboxes or task.keep_sandboxes,
    cycle = 0, accepted = {}, stall = 0, malformed = 0, evidence = {}, started = po.now(),
    prior_spent = { usd = 0, tokens = 0 },
  }, Optimizer)
  self.collector = opts.collector or po.metrics.collector { path = out_dir .. "/store", max_history = 10000 }
  po.metrics.set_global(self.collector)
  local log, err = po.store.log(out_dir .. "/store", "checkpoints", { durability = "full" })
  if not log then
    error("po.optimizer: cannot open the run's store: " .. tostring(err), 2)
  end
  self.checkpoints = log
  self.sandboxes = new_sandboxes(task, out_dir .. "/sandboxes")
  if task.method == "search" then
    self.searcher = search.new { space = task.space, strategy = task.strategy, seed = task.seed,
      direction = task.objective.direction }
    if task.baseline_params then
      -- The baseline is measured every cycle: never propose it, and let
      -- hill climbing start from it.
      self.searcher:mark(task.baseline_params)
    end
  end

  local files, ferr = read_files(task.workdir, task.target_files)
  if not files then
    error("po.optimizer: cannot read the target files: " .. ferr, 2)
  end
  self.original = { files = files, params = task.baseline_params }
  self.baseline = { files = files, params = task.baseline_params }

  if opts.resume then
    local cp, cerr = load_checkpoint(log)
    if cerr then
      error("po.optimizer: cannot resume: " .. cerr, 2)
    end
    if cp then
      self.cycle = cp.cycle
      self.baseline = cp.baseline
      self.original = cp.original
      self.best_score = cp.best_score
      self.first_score = cp.original.score
      self.accepted = cp.accepted
      self.stall = cp.stall
      self.evidence = cp.evidence
      self.prior_spent = cp.spent
      if self.searcher and cp.search then
        for k, v in pairs(cp.search) do
          self.searcher[k] = v
        end
      end
      self.resumed_from = cp.cycle
    end
  end
  if not opts.resume then
    -- A new run starts its history afresh (the cache, elsewhere, is kept).
    log:clear()
    if not opts.collector then
      self.collector:clear()
    end
  end
  self.events_path = out_dir .. "/events.jsonl"
  self.events = assert(io.open(self.events_path, opts.resume and "a" or "w"))
  return self
end

--- Creates an optimizer and runs it: `po.optimizer.run(task, opts)`.
function M.run(task, opts)
  local self = M.new(task, opts)
  local result = self:run()
  return result
end

return M
