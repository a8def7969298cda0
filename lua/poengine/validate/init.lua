--- The parallel validator: po.validate.run (the checks, the cascade of
--- stages, the report) and its built-in validators. How each validator runs
--- is in validate/runners.lua; the semaphore and the watchdog the runs are
--- scheduled with are in validate/sched.lua.
---
--- A validator is a table:
---   { name = "tests",
---     run = { "make", "-C", "{dir}", "test" }   -- argv: a child process
---        or function(candidate) ... end          -- a function: on the pool
---        or { module = "m", fn = "f", arg = v },  -- m.f(candidate, v) on the pool
---     timeout = 60, stage = 1, parse = function(result, candidate) return passed, details end,
---     isolate = true, memory_limit = 2^30 }  -- a function in a child process, killed at its deadline
--- Every validator runs in its own po.async task; child processes are waited
--- on by the event loop and functions run on worker threads, so a run uses
--- every core without threads in Lua. How many validators run at once is
--- bounded per run (`workers`) and for the whole process (one limit shared
--- by every po.validate.run, see M.configure).
local po = require "poengine"
local builtin = require "poengine.validate.builtin"
local runners = require "poengine.validate.runners"
local sched = require "poengine.validate.sched"
local options = require "poengine.util.options"
local executor = require "poengine.executor"

local now = po.now
local type, pairs, ipairs, tostring, error, xpcall = type, pairs, ipairs, tostring, error, xpcall
local traceback, sort, huge = debug.traceback, table.sort, math.huge
local failed_result, runner_of = runners.failed_result, runners.runner_of
local submit_pooled, stop_pooled, unwatch = runners.submit_pooled, runners.stop_pooled, runners.unwatch

local M = {}

--- Default deadline of one validator, in seconds.
M.DEFAULT_TIMEOUT = 600

-- The process-wide limit: argv and inline validators hold one of its slots.
local global = sched.semaphore(po.pool.cpu_count())

local CONFIGURE_OPTIONS = { concurrency = true }

--- Sets the process-wide limit on validators running at once, shared by
--- every po.validate.run (default: the number of online CPUs).
---@param opts { concurrency: integer }
function M.configure(opts)
  if type(opts) ~= "table" then
    error("po.validate.configure: options must be a table, got " .. type(opts), 2)
  end
  options.check("po.validate.configure", opts, CONFIGURE_OPTIONS, 2)
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
  kill_grace = true, isolate = true, memory_limit = true,
  executor = true, -- where an argv validator runs (po.executor); default: the run's, else the process's
  measure = "function", -- one measurement, for the optimizer's timing phase
}

local function check_validator(v, i, names)
  local where = "po.validate.run: validators[" .. i .. "]"
  if type(v) ~= "table" then
    error(where .. " must be a table, got " .. type(v), 4)
  end
  options.check(where, v, VALIDATOR_FIELDS, 4, "field")
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
  if v.isolate ~= nil and type(v.isolate) ~= "boolean" then
    error(where .. " (" .. v.name .. "): isolate must be a boolean", 4)
  end
  if v.isolate and (type(run) ~= "function" and run.module == nil or v.inline) then
    error(where .. " (" .. v.name .. "): isolate applies to a function or { module =, fn = } run, not inline", 4)
  end
  if v.memory_limit ~= nil and (not v.isolate or type(v.memory_limit) ~= "number" or v.memory_limit <= 0) then
    error(where .. " (" .. v.name .. "): memory_limit must be a positive number of bytes, with isolate = true", 4)
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
  if v.executor ~= nil then
    executor.resolve(v.executor, where .. " (" .. v.name .. ")", "default", 4)
  end
end

local RUN_OPTIONS = { workers = true, timeout = true, cascade = true, fail_fast = true, executor = true }

local function check_options(opts)
  if opts == nil then
    return {}
  end
  if type(opts) ~= "table" then
    error("po.validate.run: options must be a table, got " .. type(opts), 3)
  end
  options.check("po.validate.run", opts, RUN_OPTIONS, 3)
  if opts.workers ~= nil and (type(opts.workers) ~= "number" or opts.workers < 1) then
    error("po.validate.run: workers must be a number of at least 1", 3)
  end
  if opts.timeout ~= nil and (type(opts.timeout) ~= "number" or opts.timeout <= 0) then
    error("po.validate.run: timeout must be a positive number of seconds", 3)
  end
  if opts.executor ~= nil then
    executor.resolve(opts.executor, "po.validate.run", "default", 4)
  end
  return opts
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
      local on_cluster = runner and runners.on_cluster(v, ctx)
      if runner and not on_cluster then
        start_limited(i, v, runner)
      elseif ctx.stopped then
        finish(i, failed_result(v, "skipped", "skipped: an earlier validator failed (fail_fast)"), false)
      elseif on_cluster then
        -- A Slurm job uses none of this machine's CPUs: the cluster
        -- schedules it, so it holds no slot of the process-wide limit.
        local ok, err = xpcall(runner, traceback, v, candidate, v.timeout or opts.timeout or M.DEFAULT_TIMEOUT, ctx, i,
          function(r) finish(i, r, false) end)
        if not ok then
          finish(i, failed_result(v, "error", "po.validate: internal error: " .. tostring(err)), false)
        end
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
---@param opts? { workers?: integer, timeout?: number, cascade?: boolean, fail_fast?: boolean, executor?: string|table }
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

  local ctx = { results = {}, stops = {}, validators = validators, executor = opts.executor }
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
