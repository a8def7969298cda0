--- The parallel validator: po.validate.run and its built-in validators.
---
--- A validator is a table:
---   { name = "tests",
---     run = { "make", "-C", "{dir}", "test" }   -- argv: a child process
---        or function(candidate) ... end          -- a function: on the pool
---        or { module = "m", fn = "f", arg = v },  -- m.f(candidate, v) on the pool
---     timeout = 60, stage = 1, parse = function(result, candidate) return passed, details end }
--- Every validator runs in its own po.async task; child processes are waited
--- on by the event loop and functions run on worker threads, so a run uses
--- every core without threads in Lua. How many validators run at once is
--- bounded per run (`workers`) and for the whole process (one limit shared
--- by every po.validate.run, see M.configure).
local po = require "poengine"
local builtin = require "poengine.validate.builtin"

local now = po.now
local type, pairs, ipairs, tostring, error, xpcall, pcall = type, pairs, ipairs, tostring, error, xpcall, pcall
local next = next
local setmetatable, traceback, sort, huge = setmetatable, debug.traceback, table.sort, math.huge

local M = {}

--- Default deadline of one validator, in seconds.
M.DEFAULT_TIMEOUT = 600

---------------------------------------------------------------------------
-- Counting semaphores with callbacks (everything runs on one state's loop,
-- so a slot is handed straight to the next waiter's callback).

local Semaphore = {}
Semaphore.__index = Semaphore

local function semaphore(n)
  return setmetatable({ limit = n, used = 0, queue = {}, head = 1, tail = 0 }, Semaphore)
end

-- Calls fn() once a slot is held: at once, or when one is released.
function Semaphore:acquire(fn)
  if self.used < self.limit then
    self.used = self.used + 1
    return fn()
  end
  self.tail = self.tail + 1
  self.queue[self.tail] = fn
end

function Semaphore:release()
  if self.head <= self.tail and self.used <= self.limit then
    local fn = self.queue[self.head]
    self.queue[self.head] = nil
    self.head = self.head + 1
    return fn() -- the slot passes to the waiter
  end
  self.used = self.used - 1
end

function Semaphore:set_limit(n)
  self.limit = n
  while self.used < self.limit and self.head <= self.tail do
    self.used = self.used + 1
    self:release()
  end
end

local global = semaphore(po.pool.cpu_count())

--- Sets the process-wide limit on validators running at once, shared by
--- every po.validate.run (default: the number of online CPUs).
---@param opts { concurrency: integer }
function M.configure(opts)
  if type(opts) ~= "table" then
    error("po.validate.configure: options must be a table, got " .. type(opts), 2)
  end
  for k in pairs(opts) do
    if k ~= "concurrency" then
      error("po.validate.configure: unknown option '" .. tostring(k) .. "'", 2)
    end
  end
  local n = opts.concurrency
  if type(n) ~= "number" or n < 1 or n ~= math.floor(n) then
    error("po.validate.configure: concurrency must be a whole number of at least 1", 2)
  end
  global:set_limit(n)
end

--- The process-wide limit and how much of it is in use.
---@return { concurrency: integer, running: integer, waiting: integer }
function M.limits()
  return { concurrency = global.limit, running = global.used, waiting = global.tail - global.head + 1 }
end

---------------------------------------------------------------------------
-- Checking validators

local VALIDATOR_FIELDS = {
  name = true, run = true, timeout = true, stage = true, parse = true, cwd = true, env = true, inline = true,
  kill_grace = true,
}

local function check_validator(v, i, names)
  local where = "po.validate.run: validators[" .. i .. "]"
  if type(v) ~= "table" then
    error(where .. " must be a table, got " .. type(v), 4)
  end
  for k in pairs(v) do
    if not VALIDATOR_FIELDS[k] then
      error(where .. ": unknown field '" .. tostring(k) .. "'", 4)
    end
  end
  if type(v.name) ~= "string" or v.name == "" then
    error(where .. ": name must be a non-empty string", 4)
  end
  if names[v.name] then
    error("po.validate.run: two validators are named '" .. v.name .. "'", 4)
  end
  names[v.name] = true
  local run = v.run
  local ok = type(run) == "function"
    or (type(run) == "table" and (type(run.module) == "string" and type(run.fn) == "string"
      or (run[1] ~= nil and run.module == nil)))
  if not ok then
    error(where .. " (" .. v.name .. "): run must be an argv table, a function or { module =, fn = }", 4)
  end
  if v.timeout ~= nil and (type(v.timeout) ~= "number" or v.timeout <= 0) then
    error(where .. " (" .. v.name .. "): timeout must be a positive number of seconds", 4)
  end
  if v.stage ~= nil and type(v.stage) ~= "number" then
    error(where .. " (" .. v.name .. "): stage must be a number", 4)
  end
  if v.parse ~= nil and type(v.parse) ~= "function" then
    error(where .. " (" .. v.name .. "): parse must be a function", 4)
  end
end

local RUN_OPTIONS = { workers = true, timeout = true, cascade = true, fail_fast = true }

local function check_options(opts)
  if opts == nil then
    return {}
  end
  if type(opts) ~= "table" then
    error("po.validate.run: options must be a table, got " .. type(opts), 3)
  end
  for k in pairs(opts) do
    if not RUN_OPTIONS[k] then
      error("po.validate.run: unknown option '" .. tostring(k) .. "'", 3)
    end
  end
  if opts.workers ~= nil and (type(opts.workers) ~= "number" or opts.workers < 1) then
    error("po.validate.run: workers must be a number of at least 1", 3)
  end
  if opts.timeout ~= nil and (type(opts.timeout) ~= "number" or opts.timeout <= 0) then
    error("po.validate.run: timeout must be a positive number of seconds", 3)
  end
  return opts
end

---------------------------------------------------------------------------
-- Results

local function new_result(v, status, passed)
  return {
    name = v.name, passed = passed, status = status, duration = 0, stage = v.stage or 1,
    errors = {}, warnings = {}, details = {}, stdout = "", stderr = "",
  }
end

local function failed_result(v, status, message)
  local r = new_result(v, status, false)
  r.errors[1] = message
  return r
end

-- Moves errors, warnings and a status override out of details into r.
local function absorb_details(r, details)
  if type(details) ~= "table" then
    return
  end
  for _, key in ipairs { "errors", "warnings" } do
    local list = details[key]
    if type(list) == "table" then
      for _, e in ipairs(list) do
        r[key][#r[key] + 1] = tostring(e)
      end
      details[key] = nil
    end
  end
  if details.status == "skipped" then
    r.status = "skipped"
    details.status = nil
  end
  r.details = details
end

-- Applies a parse function (or the default: exit status 0) to a result.
local function judge(v, r, candidate, run_result)
  if v.parse then
    local ok, passed, details = pcall(v.parse, run_result, candidate)
    if not ok then
      r.status, r.passed = "error", false
      r.errors[#r.errors + 1] = "parse failed: " .. tostring(passed)
      return
    end
    r.passed = passed and true or false
    absorb_details(r, details)
  else
    r.passed = run_result.status == "ok"
  end
  if r.status ~= "skipped" then
    r.status = r.passed and "ok" or "failed"
  end
end

---------------------------------------------------------------------------
-- Running one validator

local function expand_argv(v, candidate)
  local argv = {}
  for _, a in ipairs(v.run) do
    if a == "{files}" then
      local files = candidate.files or { candidate.file }
      if #files == 0 then
        return nil, "argv uses {files} but the candidate has no files"
      end
      for _, f in ipairs(files) do
        argv[#argv + 1] = f
      end
    else
      local missing
      a = tostring(a):gsub("{(%a+)}", function(key)
        if key == "dir" or key == "file" then
          local value = candidate[key]
          if value == nil then
            missing = key
            return ""
          end
          return tostring(value)
        end
      end)
      if missing then
        return nil, "argv uses {" .. missing .. "} but the candidate has no " .. missing
      end
      argv[#argv + 1] = a
    end
  end
  return argv
end

-- Each runner starts one validator and calls done(result) once, from a
-- loop callback; it registers a stop function in ctx.stops[i] meanwhile.

local function run_argv(v, candidate, timeout, ctx, i, done)
  local argv, err = expand_argv(v, candidate)
  if not argv then
    return done(failed_result(v, "error", err))
  end
  local fut = po.run {
    argv = argv, cwd = v.cwd or candidate.dir, env = v.env, timeout = timeout, kill_grace = v.kill_grace,
  }
  ctx.stops[i] = function() fut:cancel() end
  fut:_on_settle(function()
    local res, msg, code = fut:_outcome()
    if not res then
      return done(failed_result(v, code == "ECANCELED" and "canceled" or "error", tostring(msg)))
    end
    local r = new_result(v, res.status, false)
    r.duration, r.stdout, r.stderr = res.duration, res.stdout, res.stderr
    r.details = { code = res.code, signal = res.signal, truncated = res.truncated }
    if res.status == "timeout" then
      r.errors[1] = "timed out after " .. timeout .. " s"
    elseif res.status == "error" then
      r.errors[1] = res.error
    else
      judge(v, r, candidate, res)
      if not r.passed and not v.parse and #r.errors == 0 then
        r.errors[1] = res.signal and ("killed by " .. res.signal) or ("exited with code " .. tostring(res.code))
      end
    end
    done(r)
  end)
end

local function function_outcome(v, r, ok, passed, details)
  if not ok then
    r.status, r.passed = "error", false
    r.errors[1] = tostring(passed)
    return r
  end
  r.passed = passed and true or false
  absorb_details(r, details)
  if r.status ~= "skipped" then
    r.status = r.passed and "ok" or "failed"
  end
  return r
end

-- One timer per run watches the deadlines of its functions (a timer per
-- validator would cost a heap entry each until its deadline, 600 s away).
-- dog.deadline[i] is validator i's deadline; at it, dog.expire[i]() runs,
-- or for a pool validator (no expire function) expire_pooled(ctx, i).
local expire_pooled

local function new_watchdog(ctx)
  local dog = { deadline = {}, expire = {}, n = 0 }
  local function on_timer(f)
    if f.state == "done" then
      dog.fire()
    end
  end
  function dog.arm(at, t)
    dog.at = at
    dog.timer = po.after(math.max(0, at - t))
    dog.timer:_on_settle(on_timer)
  end
  function dog.fire()
    dog.timer, dog.at = nil, nil
    local t, due = now(), {}
    for k, d in pairs(dog.deadline) do
      if d <= t then
        due[#due + 1] = k
      end
    end
    -- Expiring one may start others (and watch them): not while traversing.
    for _, k in ipairs(due) do
      if dog.deadline[k] then
        local fn = dog.expire[k]
        dog.deadline[k], dog.expire[k] = nil, nil
        dog.n = dog.n - 1
        if fn then
          fn()
        else
          expire_pooled(ctx, k)
        end
      end
    end
    local next_at
    for _, d in pairs(dog.deadline) do
      if not next_at or d < next_at then
        next_at = d
      end
    end
    if next_at and (not dog.at or next_at < dog.at) then
      if dog.timer then
        dog.timer:cancel()
      end
      dog.arm(next_at, t)
    end
  end
  ctx.watchdog = dog
  return dog
end

local function watch(ctx, i, deadline, expire)
  local dog = ctx.watchdog or new_watchdog(ctx)
  dog.deadline[i] = deadline
  dog.expire[i] = expire
  dog.n = dog.n + 1
  if not dog.at or deadline < dog.at then
    if dog.timer then
      dog.timer:cancel()
    end
    dog.arm(deadline, now())
  end
end

local function unwatch(ctx, i)
  local dog = ctx.watchdog
  if dog and dog.deadline[i] then
    dog.deadline[i], dog.expire[i] = nil, nil
    dog.n = dog.n - 1
    if dog.n == 0 and dog.timer then
      dog.timer:cancel()
      dog.timer, dog.at = nil, nil
    end
  end
end

-- Inline functions run in a po.async task of the calling state.
local function run_inline(v, candidate, timeout, ctx, i, done)
  local t0 = now()
  local task = po.async(function()
    return xpcall(v.run, traceback, candidate)
  end)
  ctx.stops[i] = function() task:cancel() end
  local finished = false
  local function finish(r)
    if not finished then
      finished = true
      unwatch(ctx, i)
      r.duration = now() - t0
      done(r)
    end
  end
  watch(ctx, i, t0 + timeout, function()
    finish(failed_result(v, "timeout", "timed out after " .. timeout .. " s"))
    task:cancel()
  end)
  task:_on_settle(function()
    if task.state ~= "done" then
      return finish(failed_result(v, "canceled", "canceled"))
    end
    finish(function_outcome(v, new_result(v, "ok", false), task:_outcome()))
  end)
end

-- Function validators run on the pool through one po.pool.batch per run:
-- one callback for every result and the candidate copied once, instead of
-- a future, closures and a copy of the candidate per validator. The
-- duration is the worker's own timing. ctx.stops[i] is true while pool
-- validator i runs; ctx.reported[i] marks one already reported (timed out
-- or canceled) whose late result is to be dropped.

local function pooled_result(ctx, i, seconds, a, b)
  if ctx.reported[i] then
    ctx.reported[i] = nil
    return
  end
  unwatch(ctx, i)
  local v = ctx.validators[i]
  local r
  if seconds == nil then -- a, b: message, code
    r = b == "ECANCELED" and failed_result(v, "canceled", "canceled")
      or function_outcome(v, new_result(v, "ok", false), false, a)
    r.duration = now() - ctx.started[i]
  else -- a, b: passed, details
    r = function_outcome(v, new_result(v, "ok", false), true, a, b)
    r.duration = seconds
  end
  ctx.finish(i, r, false)
end

-- Reports pool validator i now with status and message; its job is
-- canceled if it has not started, and its result dropped when it comes.
local function stop_pooled(ctx, i, status, message)
  ctx.reported[i] = true
  ctx.batch:cancel(i)
  unwatch(ctx, i)
  local r = failed_result(ctx.validators[i], status, message)
  r.duration = now() - ctx.started[i]
  ctx.finish(i, r, false)
end

expire_pooled = function(ctx, i)
  local timeout = ctx.timeouts[i]
  stop_pooled(ctx, i, "timeout", "timed out after " .. timeout .. " s (the worker finishes the function anyway)")
end

local function submit_pooled(ctx, v, i, timeout, candidate, t0)
  local b = ctx.batch
  if not b then
    b = po.pool.batch(function(...) return pooled_result(ctx, ...) end, candidate)
    ctx.batch, ctx.reported, ctx.started, ctx.timeouts = b, {}, {}, {}
  end
  local run = v.run
  if type(run) == "function" then
    b:submit(i, run)
  else
    b:submit(i, { module = run.module, fn = run.fn }, run.arg)
  end
  ctx.started[i], ctx.timeouts[i] = t0, timeout
  ctx.stops[i] = true
  ctx.staged = true
  watch(ctx, i, t0 + timeout)
end

-- argv and inline validators: the runner and whether it holds a slot of
-- the process-wide limit (all of them do); nil for pool validators.
local function runner_of(v)
  if type(v.run) == "table" and v.run.module == nil then
    return run_argv
  elseif v.inline then
    return run_inline
  end
  return nil
end

---------------------------------------------------------------------------
-- po.validate.run

local function stop_all(ctx)
  ctx.stopped = true
  for i, stop in pairs(ctx.stops) do
    if stop == true then
      stop_pooled(ctx, i, "canceled", "canceled")
    else
      stop()
    end
  end
end

-- Runs the validators at `indices` and calls on_done() when all are done,
-- at most opts.workers at once. Child processes and inline functions also
-- hold a slot of the process-wide limit; pool functions are bounded by the
-- pool's workers.
local function run_group(indices, validators, candidate, opts, ctx, on_done)
  local count = #indices
  if count == 0 then
    return on_done()
  end
  local left, running, next_k = count, 0, 1
  local limit = opts.workers or huge
  local start_more

  local function finish(i, r, limited)
    ctx.stops[i] = nil
    ctx.results[i] = r
    if limited then
      global:release()
    end
    if opts.fail_fast and not r.passed and r.status ~= "skipped" and r.status ~= "canceled" then
      stop_all(ctx)
    end
    left = left - 1
    if left == 0 then
      on_done()
    end
    running = running - 1
    start_more()
  end
  ctx.finish = finish

  local function start_limited(i, v, runner)
    local function done(r)
      finish(i, r, true)
    end
    global:acquire(function()
      if ctx.stopped then
        return done(failed_result(v, "skipped", "skipped: an earlier validator failed (fail_fast)"))
      end
      local timeout = v.timeout or opts.timeout or M.DEFAULT_TIMEOUT
      local ok, err = xpcall(runner, traceback, v, candidate, timeout, ctx, i, done)
      if not ok then
        done(failed_result(v, "error", "po.validate: internal error: " .. tostring(err)))
      end
    end)
  end

  start_more = function()
    local t0
    while running < limit and next_k <= count do
      local i = indices[next_k]
      next_k = next_k + 1
      running = running + 1
      local v = validators[i]
      local runner = runner_of(v)
      if runner then
        start_limited(i, v, runner)
      elseif ctx.stopped then
        finish(i, failed_result(v, "skipped", "skipped: an earlier validator failed (fail_fast)"), false)
      else
        t0 = t0 or now()
        local ok, err = xpcall(submit_pooled, traceback, ctx, v, i, v.timeout or opts.timeout or M.DEFAULT_TIMEOUT,
          candidate, t0)
        if not ok then
          ctx.stops[i] = nil
          unwatch(ctx, i)
          finish(i, failed_result(v, "error", "po.validate: internal error: " .. tostring(err)), false)
        end
      end
    end
    if ctx.staged then -- hand this round's pool validators to the workers together
      ctx.staged = false
      ctx.batch:flush()
    end
  end
  start_more()
end

--- Runs validators against a candidate (a table with `dir`, `file`,
--- `files`, or anything the validators read) and returns the report
--- `{ passed, results, by_name, duration, speedup }`, results in input
--- order. Inside po.async the calling task yields while they run.
---@param validators table[]
---@param candidate table|string a table, or a file path (candidate.file)
---@param opts? { workers?: integer, timeout?: number, cascade?: boolean, fail_fast?: boolean }
function M.run(validators, candidate, opts)
  if type(validators) ~= "table" then
    error("po.validate.run: validators must be a list of validators, got " .. type(validators), 2)
  end
  if type(candidate) == "string" then
    candidate = { file = candidate, dir = candidate:match("^(.*)/[^/]*$") }
  elseif type(candidate) ~= "table" then
    error("po.validate.run: candidate must be a table or a file path, got " .. type(candidate), 2)
  end
  opts = check_options(opts)
  local names = {}
  for i, v in ipairs(validators) do
    check_validator(v, i, names)
  end

  local ctx = { results = {}, stops = {}, validators = validators }
  local t0 = now()
  local n = #validators
  local finished = po.future()
  if opts.cascade then
    local stages, by_stage = {}, {}
    for i, v in ipairs(validators) do
      local s = v.stage or 1
      if not by_stage[s] then
        by_stage[s] = {}
        stages[#stages + 1] = s
      end
      by_stage[s][#by_stage[s] + 1] = i
    end
    sort(stages)
    local k = 0
    local failed_stage
    local function next_stage()
      if k > 0 and not failed_stage then
        for _, i in ipairs(by_stage[stages[k]]) do
          if not ctx.results[i].passed and ctx.results[i].status ~= "skipped" then
            failed_stage = stages[k]
          end
        end
      end
      k = k + 1
      local s = stages[k]
      if not s then
        return finished:resolve()
      end
      if failed_stage then
        for _, i in ipairs(by_stage[s]) do
          ctx.results[i] = failed_result(validators[i], "skipped",
            "skipped: stage " .. tostring(failed_stage) .. " failed (cascade)")
        end
        return next_stage()
      end
      run_group(by_stage[s], validators, candidate, opts, ctx, next_stage)
    end
    next_stage()
  else
    local all = {}
    for i = 1, n do
      all[i] = i
    end
    run_group(all, validators, candidate, opts, ctx, function() finished:resolve() end)
  end
  finished:wait()

  local wall = now() - t0
  local report = { passed = true, results = ctx.results, by_name = {}, duration = wall }
  local sum = 0
  for i = 1, n do
    local r = ctx.results[i]
    report.by_name[r.name] = r
    sum = sum + r.duration
    if not r.passed then
      report.passed = false
    end
  end
  report.speedup = wall > 0 and sum / wall or 1
  return report
end

---------------------------------------------------------------------------
-- Built-in validators and levels (lua/poengine/validate/builtin.lua)

M.syntax = builtin.syntax
M.command = builtin.command
M.tests = builtin.tests
M.benchmark = builtin.benchmark
M.pattern = builtin.pattern
M.lint = builtin.lint
M.level = builtin.level
M.parse_test_summary = builtin.parse_test_summary
M.stats = builtin.stats
M.compare = builtin.compare

return M
