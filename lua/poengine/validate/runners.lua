--- How po.validate runs one validator: a child process (argv), a function
--- in a po.async task of the calling state (inline), or a function on the
--- worker pool; and how each outcome becomes a result
--- `{ name, passed, status, duration, stage, errors, warnings, details,
---    stdout, stderr }`.
---
--- Each runner starts one validator of a run and calls done(result) once,
--- from a loop callback; meanwhile it registers a stop function in
--- ctx.stops[i]. ctx is the run's state (validate/init.lua).
local po = require "poengine"
local sched = require "poengine.validate.sched"
local executor = require "poengine.executor"

local now = po.now
local type, ipairs, tostring, xpcall, pcall = type, ipairs, tostring, xpcall, pcall
local traceback = debug.traceback

local M = {}

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

local function run_argv(v, candidate, timeout, ctx, i, done)
  local argv, err = expand_argv(v, candidate)
  if not argv then
    return done(failed_result(v, "error", err))
  end
  local fut = po.run {
    argv = argv, cwd = v.cwd or candidate.dir, env = v.env, timeout = timeout, kill_grace = v.kill_grace,
    executor = v.executor or ctx.executor or "default",
  }
  ctx.stops[i] = function() fut:cancel() end
  fut:on_settle(function()
    local res, msg, code = fut:outcome()
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

-- The run's watchdog, made on first use; a pool validator is watched
-- without an expire function, its deadline handled by expire_pooled.
local expire_pooled

local function watch(ctx, i, deadline, expire)
  local dog = ctx.watchdog
  if not dog then
    dog = sched.watchdog(function(k) return expire_pooled(ctx, k) end)
    ctx.watchdog = dog
  end
  dog:watch(i, deadline, expire)
end

local function unwatch(ctx, i)
  local dog = ctx.watchdog
  if dog then
    dog:unwatch(i)
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
  task:on_settle(function()
    if task.state ~= "done" then
      return finish(failed_result(v, "canceled", "canceled"))
    end
    finish(function_outcome(v, new_result(v, "ok", false), task:outcome()))
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

-- Reports pool validator i now with status and message. A job running is
-- abandoned: its worker is replaced (src/core/pool.c) and the function
-- runs on in its old thread until it returns, never reported. A job
-- queued is canceled; one finishing has its result dropped when it comes.
local function stop_pooled(ctx, i, status, message)
  local b = ctx.batch
  local started = b:started(i) or ctx.started[i]
  if b:abandon(i) then
    if status == "timeout" then
      message = message .. " (its worker was replaced; the function runs on in an abandoned thread until it "
        .. "returns: use isolate = true to stop it)"
    end
  else
    ctx.reported[i] = true
    b:cancel(i)
  end
  unwatch(ctx, i)
  local r = failed_result(ctx.validators[i], status, message)
  r.duration = now() - started
  ctx.finish(i, r, false)
end

-- A pool validator's deadline counts from when a worker started it: one
-- still queued (behind runaway functions, say), or started after it was
-- watched, is watched again until start + timeout.
expire_pooled = function(ctx, i)
  local timeout = ctx.timeouts[i]
  local started, t = ctx.batch:started(i), now()
  if not started or started + timeout > t then
    return watch(ctx, i, (started or t) + timeout)
  end
  stop_pooled(ctx, i, "timeout", "timed out after " .. timeout .. " s")
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

-- Isolated functions (isolate = true) run in a child poengine process
-- (validate/child.lua): the function's bytecode and its arguments go in on
-- stdin (po.pool.pack, the pool's rules for what may cross), the results
-- come back on stdout (po.pool.encode); at the deadline the child is killed
-- like any po.run child, so a runaway function, even one stuck inside a C
-- call, really stops. Its address space is capped (memory_limit), so a
-- runaway allocation ends as ENOMEM instead of swapping the machine.

--- Default address-space cap of an isolated function's process, in bytes.
M.DEFAULT_MEMORY_LIMIT = 2 ^ 30

local CHILD_CHUNK = "require('poengine.validate.child').main { memory_limit = %.17g, path = %q, cpath = %q }"

local function out_of_memory(r, limit)
  r.errors[1] = "ENOMEM: out of memory (memory_limit = " .. limit .. " bytes): " .. r.errors[1]
  r.details.code = "ENOMEM"
end

-- The result of an isolated run that ended without a result of its own.
local function child_failure(v, res, limit)
  local how = res.signal and ("was killed by " .. res.signal) or ("exited with code " .. tostring(res.code))
  local r = failed_result(v, "error", "the isolated function's process " .. how .. " without a result")
  if res.stderr:find("not enough memory", 1, true) then
    out_of_memory(r, limit)
  end
  return r
end

local function run_isolated(v, candidate, timeout, ctx, i, done)
  local run, limit = v.run, v.memory_limit or M.DEFAULT_MEMORY_LIMIT
  local ok, payload
  if type(run) == "function" then
    ok, payload = pcall(po.pool.pack, run, candidate)
  else
    ok, payload = pcall(po.pool.pack, { module = run.module, fn = run.fn }, candidate, run.arg)
  end
  if not ok then
    return done(failed_result(v, "error", tostring(payload)))
  end
  local fut = po.run {
    argv = { po.executable(), "-e", CHILD_CHUNK:format(limit, package.path, package.cpath) },
    stdin = payload, timeout = timeout, kill_grace = v.kill_grace, output_limit = 2 ^ 28,
  }
  ctx.stops[i] = function() fut:cancel() end
  fut:on_settle(function()
    local res, msg, code = fut:outcome()
    if not res then
      return done(failed_result(v, code == "ECANCELED" and "canceled" or "error", tostring(msg)))
    end
    local r
    local decoded, passed_ok, a, b = pcall(po.pool.decode, res.stdout)
    if res.status == "timeout" then
      r = failed_result(v, "timeout", "timed out after " .. timeout .. " s (its process was killed)")
    elseif not decoded or res.status ~= "ok" then
      r = child_failure(v, res, limit)
    elseif passed_ok then
      r = function_outcome(v, new_result(v, "ok", false), true, a, b)
    else
      r = failed_result(v, "error", tostring(a))
      if b == "ENOMEM" then
        out_of_memory(r, limit)
      end
    end
    r.duration, r.stderr = res.duration, res.stderr
    done(r)
  end)
end

-- argv, inline and isolated validators: the runner, which holds a slot of
-- the process-wide limit; nil for pool validators.
local function runner_of(v)
  if type(v.run) == "table" and v.run.module == nil then
    return run_argv
  elseif v.isolate then
    return run_isolated
  elseif v.inline then
    return run_inline
  end
  return nil
end

-- True when an argv validator runs as a Slurm job (its own executor, else
-- the run's, else the process default).
function M.on_cluster(v, ctx)
  return runner_of(v) == run_argv and executor.kind_of(v.executor or ctx.executor) == "slurm"
end

M.new_result, M.failed_result = new_result, failed_result
M.runner_of, M.submit_pooled, M.stop_pooled, M.unwatch = runner_of, submit_pooled, stop_pooled, unwatch

return M
