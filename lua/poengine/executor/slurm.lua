--- The Slurm executor: one po.run is one batch job (docs/scripting.md,
--- "Executors").
---
--- A run becomes a generated script on the shared directory that changes
--- to the run's cwd, sets its environment and execs its argv, with stdout
--- and stderr going to files beside it. `sbatch --parsable` submits it;
--- one poller per process watches every job of the process with one
--- `squeue` call per poll (backoff 50 ms doubling to 1 s, back to 50 ms on
--- each submission); a job that squeue no longer knows is looked up in the
--- job completion log. Exit code, signal and times come from those
--- records, never from srun's exit status, and nothing waits with
--- `sbatch --wait` (whose poll steps of 2, 8 and 32 s make a 1 s job take
--- 10 s). Deadlines are the engine's: at the deadline `scancel
--- --signal=TERM --full`, after kill_grace `scancel --signal=KILL --full`
--- (every process of the job, the batch script's children included).
local core = require "poengine_core"
local future = require "poengine.future"
local timers = require "poengine.timers"
local options = require "poengine.util.options"
local executor = require "poengine.executor"

local type, pairs, ipairs, tostring, tonumber, error = type, pairs, ipairs, tostring, tonumber, error
local concat, floor, min, max = table.concat, math.floor, math.min, math.max
local core_run, start_timer, stop_timer, write_file = core.run, timers.start, timers.stop, core.write_file
local WRITE = { sync = false, parents = true }

local M = {}

--- The poller's backoff, in seconds: first and longest wait between polls.
M.MIN_DELAY, M.MAX_DELAY = 0.05, 1.0

local DEFAULT_KILL_GRACE = 2.0 -- as a local po.run's
local DEFAULT_OUTPUT_LIMIT = 16 * 1024 * 1024
-- Job states after which nothing of the job runs any more (squeue's names).
local FINAL = {
  COMPLETED = true, FAILED = true, CANCELLED = true, TIMEOUT = true, NODE_FAIL = true, PREEMPTED = true,
  OUT_OF_MEMORY = true, BOOT_FAIL = true, DEADLINE = true, REVOKED = true, SPECIAL_EXIT = true,
}
-- Final states that say the job could not run rather than how it ended.
local BROKEN = { NODE_FAIL = true, BOOT_FAIL = true, REVOKED = true, PREEMPTED = true }

local jobs, watched = {}, 0 -- job id (string) -> job, and how many
local poll_timer, polling, delay = nil, 0, M.MIN_DELAY
local job_seq, process_name = 0, nil
-- Per cluster (its slurm.conf, "" for the environment's): the job
-- completion log's path (false: none), and whether it was asked for.
local jobcomp_logs, jobcomp_asked = {}, {}

---------------------------------------------------------------------------
-- The run's spec

local RUN_FIELDS = {
  argv = "table", cmd = "string", shell = "boolean", cwd = "string", env = "table", inherit_env = "boolean",
  stdin = "string", timeout = "number", kill_grace = "number", output_limit = "number", cpu = true,
}

-- The checked spec: { argv, cwd, env, inherit, stdin, timeout, grace, limit }.
local function check_spec(spec)
  options.check("po.run", spec, RUN_FIELDS, 4)
  if spec.cpu ~= nil then
    error("po.run: cpu (pinning to a core of this machine) cannot be used with executor \"slurm\"", 4)
  end
  local argv
  if spec.cmd ~= nil then
    if spec.argv ~= nil then
      error("po.run: give argv or cmd, not both", 4)
    end
    if not spec.shell then
      error("po.run: cmd needs shell = true (a command line never goes to a shell implicitly); or pass argv = {...}", 4)
    end
    argv = { "/bin/sh", "-c", spec.cmd }
  else
    if spec.argv == nil then
      error("po.run: argv (a list of strings) is required", 4)
    end
    if spec.shell then
      error("po.run: shell = true needs cmd = \"command line\", not argv", 4)
    end
    argv = {}
    for i = 1, #spec.argv do
      local a = spec.argv[i]
      if type(a) ~= "string" and type(a) ~= "number" then
        error("po.run: argv[" .. i .. "] must be a string, got " .. type(a), 4)
      end
      argv[i] = tostring(a)
    end
    if #argv == 0 then
      error("po.run: argv must not be empty", 4)
    end
  end
  for name, v in pairs(spec.env or {}) do
    if type(name) ~= "string" or name == "" or not name:match("^[%a_][%w_]*$") then
      error("po.run: env name '" .. tostring(name) .. "' is not a valid variable name", 4)
    end
    if type(v) ~= "string" and type(v) ~= "number" and v ~= false then
      error("po.run: env." .. name .. " must be a string, a number or false (to unset it), got " .. type(v), 4)
    end
  end
  local timeout, grace, limit = spec.timeout, spec.kill_grace, spec.output_limit
  if timeout ~= nil and not (timeout > 0) then
    error("po.run: timeout must be a positive number of seconds, got " .. tostring(timeout), 4)
  end
  if grace ~= nil and not (grace >= 0) then
    error("po.run: kill_grace must be a non-negative number of seconds, got " .. tostring(grace), 4)
  end
  if limit ~= nil and not (limit >= 0 and limit == floor(limit)) then
    error("po.run: output_limit must be a non-negative whole number of bytes", 4)
  end
  return {
    argv = argv, cwd = spec.cwd, env = spec.env, inherit = spec.inherit_env ~= false, stdin = spec.stdin,
    timeout = timeout, grace = grace or DEFAULT_KILL_GRACE, limit = limit or DEFAULT_OUTPUT_LIMIT,
  }
end

---------------------------------------------------------------------------
-- Files on the shared directory

local function quote(s)
  return "'" .. (tostring(s):gsub("'", "'\\''")) .. "'"
end

local function read_file(path, limit)
  local f = io.open(path, "rb")
  if not f then
    return nil
  end
  local data = f:read(limit and limit + 1 or "*a") or ""
  f:close()
  if limit and #data > limit then
    return data:sub(1, limit), true
  end
  return data, false
end

local function first_line(path)
  local data = read_file(path)
  return data and data:match("^[^\n]*")
end

-- This process's directory on the shared one (made with its first job's
-- files, removed with its last's): the host and pid keep two engines
-- sharing it apart.
local function process_dir(shared)
  if not process_name then
    local host = (first_line("/proc/sys/kernel/hostname") or "host"):gsub("[^%w.-]", "_")
    local pid = (first_line("/proc/self/stat") or ""):match("^%d+") or tostring(floor(core.now() * 1e6))
    process_name = "poengine-" .. host .. "-" .. pid
  end
  return shared .. "/" .. process_name
end

-- The batch script: cd, environment, exec. A run that cannot start (no
-- such directory, no such program) leaves its reason in `failed`, so its
-- result is status "error" as a local one's would be.
local function script_of(run, dir)
  local lines = { "#!/bin/sh" }
  local fail = " 2>/dev/null || { echo %s > " .. quote(dir .. "/failed") .. "; exit 127; }"
  if run.cwd then
    lines[#lines + 1] = "cd -- " .. quote(run.cwd) .. fail:format("chdir")
  end
  local assigns, names = {}, {}
  for name in pairs(run.env or {}) do
    names[#names + 1] = name
  end
  table.sort(names)
  for _, name in ipairs(names) do
    local v = run.env[name]
    if run.inherit then
      lines[#lines + 1] = v == false and ("unset " .. name) or ("export " .. name .. "=" .. quote(v))
    elseif v ~= false then
      assigns[#assigns + 1] = quote(name .. "=" .. tostring(v))
    end
  end
  local prog = run.argv[1]
  if prog:find("/", 1, true) then
    lines[#lines + 1] = "[ -f " .. quote(prog) .. " ] && [ -x " .. quote(prog) .. " ]" .. fail:format("execute")
  else
    lines[#lines + 1] = "command -v " .. quote(prog) .. " >/dev/null" .. fail:format("execute")
  end
  local words = {}
  for i, a in ipairs(run.argv) do
    words[i] = quote(a)
  end
  local exec = "exec " .. (run.inherit and "" or "env -i " .. concat(assigns, " ") .. " ") .. concat(words, " ")
  if run.stdin then
    exec = exec .. " < " .. quote(dir .. "/stdin")
  end
  lines[#lines + 1] = exec
  return concat(lines, "\n") .. "\n"
end

local function remove_dir(dir)
  for _, name in ipairs { "job.sh", "stdin", "stdout", "stderr", "failed" } do
    os.remove(dir .. "/" .. name)
  end
  os.remove(dir)
  os.remove((dir:gsub("/[^/]*$", ""))) -- the process's directory, once empty
end

---------------------------------------------------------------------------
-- Results

local function error_result(message)
  return { status = "error", stdout = "", stderr = "", truncated = false, duration = 0, error = message }
end

-- "2026-12-05T00:41:38" (the controller's local time) as Unix seconds.
local function slurm_time(s)
  local y, mo, d, h, mi, sec = (s or ""):match("^(%d+)-(%d+)-(%d+)T(%d+):(%d+):(%d+)$")
  if not y then
    return nil
  end
  return os.time { year = tonumber(y), month = tonumber(mo), day = tonumber(d), hour = tonumber(h),
    min = tonumber(mi), sec = tonumber(sec) }
end

-- The result table of a finished job from its record { state, code, signal,
-- start, finish }, with the fields a local run's has (job_id instead of pid).
local function result_of(job, rec)
  local run, dir = job.run, job.dir
  local failed = first_line(dir .. "/failed")
  local r
  if failed == "chdir" then
    r = error_result("cannot change directory to '" .. run.cwd .. "': No such file or directory")
  elseif failed == "execute" then
    r = error_result("cannot execute '" .. run.argv[1] .. "': No such file or directory")
  elseif BROKEN[rec.state] then
    r = error_result("slurm job " .. job.id .. " ended " .. rec.state .. " without running to its end")
  else
    r = { stdout = "", stderr = "", truncated = false }
    local t1, t2
    r.stdout, t1 = read_file(dir .. "/stdout", run.limit)
    r.stderr, t2 = read_file(dir .. "/stderr", run.limit)
    r.stdout, r.stderr, r.truncated = r.stdout or "", r.stderr or "", t1 or t2 or false
    if job.timed_out then
      -- slurmstepd's note of the kill is Slurm's, not the program's output.
      r.stderr = r.stderr:gsub("slurmstepd[^\n]*%*%*%* JOB %d+ ON [^\n]*CANCELLED AT [^\n]*%*%*%*\n?", "")
    end
    if rec.signal then
      r.signal = core.signal_name(rec.signal) or ("signal " .. rec.signal)
    else
      r.code = rec.code
    end
    if job.timed_out then
      r.status = "timeout"
    elseif r.code == 0 then
      r.status = "ok"
    else
      r.status = "failed"
    end
    local start, finish = slurm_time(rec.start), slurm_time(rec.finish)
    r.duration = start and finish and max(0, finish - start) or 0
  end
  r.job_id = tonumber(job.id)
  return r
end

---------------------------------------------------------------------------
-- Watching jobs

local poll

local function schedule_poll()
  if poll_timer or polling > 0 or watched == 0 then
    return
  end
  poll_timer = start_timer(delay, poll)
end

-- A submission: poll soon again, whatever the backoff had reached.
local function poll_soon()
  delay = M.MIN_DELAY
  if poll_timer then
    stop_timer(poll_timer)
    poll_timer = nil
  end
  schedule_poll()
end

-- A Slurm client command against the cluster of slurm.conf `conf` ("":
-- the one SLURM_CONF names, or Slurm's default).
local function client(conf, argv)
  return core_run { argv = argv, env = conf ~= "" and { SLURM_CONF = conf } or nil, timeout = 60 }
end

local function scancel(job, args)
  local argv = { "scancel", "--quiet" }
  for _, a in ipairs(args) do
    argv[#argv + 1] = a
  end
  argv[#argv + 1] = job.id
  client(job.conf, argv)
end

local function forget(job)
  if job.deadline then
    stop_timer(job.deadline)
  end
  if jobs[job.id] == job then
    jobs[job.id] = nil
    watched = watched - 1
  end
end

local function finish(job, rec)
  forget(job)
  if job.kill_timer then
    stop_timer(job.kill_timer)
  end
  job.fut:resolve(result_of(job, rec))
  remove_dir(job.dir)
end

-- TERM now, KILL after the grace, to every process of the job.
local function terminate(job)
  scancel(job, { "--full", "--signal=TERM" })
  job.kill_timer = start_timer(job.run.grace, function()
    job.kill_timer = nil
    scancel(job, { "--full", "--signal=KILL" })
    if job.canceled then
      remove_dir(job.dir)
    end
  end)
end

local function on_deadline(job)
  job.deadline = nil
  job.timed_out = true
  terminate(job)
end

-- The deadline counts from the job's start. StartTime has whole seconds:
-- the start lies in [StartTime, StartTime + 1) and before the moment the
-- poller saw it running, so the earlier of those two bounds is never early.
local function arm_deadline(job, rec)
  if job.deadline or job.timed_out or not job.run.timeout then
    return
  end
  local started = slurm_time(rec.start)
  if not started then
    return
  end
  local t = core.time()
  local at = min(started + 1, t) + job.run.timeout
  job.deadline = start_timer(max(0, at - t), function() on_deadline(job) end)
end

-- "JobID|State|exit_code|StartTime|EndTime|": exit_code is the wait status.
local function parse_squeue(text)
  local recs = {}
  for id, state, status, start, finish in text:gmatch("(%d+)|([%u_]+)[^|]*|(%d*)|([^|]*)|([^|]*)|") do
    local w = tonumber(status) or 0
    local sig = w % 128
    recs[id] = { state = state, start = start, finish = finish, code = floor(w / 256) % 256,
      signal = sig ~= 0 and sig or nil }
  end
  return recs
end

-- The job completion log's path, looked up once (`scontrol show config`)
-- without waiting: nil until the answer is in, false when there is no
-- log of the jobcomp/filetxt kind.
local function jobcomp_path(conf)
  if jobcomp_logs[conf] == nil and not jobcomp_asked[conf] then
    jobcomp_asked[conf] = true
    local fut = client(conf, { "scontrol", "show", "config" })
    fut:on_settle(function()
      local r = fut:outcome()
      local text = r and r.status == "ok" and r.stdout or ""
      local path = text:match("\nJobCompLoc%s*=%s*(%S+)")
      jobcomp_logs[conf] = text:match("\nJobCompType%s*=%s*(%S+)") == "jobcomp/filetxt" and path or false
    end)
  end
  return jobcomp_logs[conf]
end

-- Records of jobs the controller has forgotten, from the job completion log
-- (jobcomp/filetxt: one "JobId=N ... ExitCode=code:signal" line per job).
-- Returns false while the log's path is not known yet.
local function from_jobcomp(conf, ids, recs)
  local path = jobcomp_path(conf)
  if path == nil then
    return false
  end
  local text = path and read_file(path)
  if not text then
    return true
  end
  local wanted = {}
  for _, id in ipairs(ids) do
    wanted[id] = true
  end
  for line in text:gmatch("[^\n]+") do
    local id = line:match("^JobId=(%d+) ")
    if id and wanted[id] then
      local code, sig = line:match(" ExitCode=(%d+):(%d+)")
      sig = tonumber(sig) or 0
      recs[id] = { state = line:match(" JobState=([%u_]+)") or "COMPLETED", start = line:match(" StartTime=(%S+)"),
        finish = line:match(" EndTime=(%S+)"), code = tonumber(code) or 0, signal = sig ~= 0 and sig or nil }
    end
  end
  return true
end

local function on_records(ids, recs, complete)
  for _, id in ipairs(ids) do
    local job, rec = jobs[id], recs[id]
    if job and rec then
      if FINAL[rec.state] then
        finish(job, rec)
      elseif rec.state ~= "PENDING" then
        arm_deadline(job, rec)
      end
    elseif job and job.seen and complete then
      -- Neither the controller nor the log knows it any more.
      forget(job)
      job.fut:resolve(error_result("slurm job " .. id .. " has no record left (purged before it was seen to end)"))
      remove_dir(job.dir)
    end
  end
end

-- One squeue call for every job of one cluster; then the next poll.
local function poll_cluster(conf, ids)
  polling = polling + 1
  local fut = client(conf, { "squeue", "--noheader", "--states=all", "--jobs=" .. concat(ids, ","),
    "--Format=JobID:|,State:|,exit_code:|,StartTime:|,EndTime:|" })
  fut:on_settle(function()
    polling = polling - 1
    local r = fut:outcome()
    local recs = r and r.status ~= "error" and parse_squeue(r.stdout) or {}
    -- squeue lists the jobs it knows and fails only when it knows none;
    -- any other failure (the controller busy, a timeout) is tried again.
    local answered = r and (r.status == "ok" or r.stderr:find("Invalid job id", 1, true))
    if answered then
      local missing = {}
      for _, id in ipairs(ids) do
        if not recs[id] then
          missing[#missing + 1] = id
        end
      end
      local complete = #missing == 0 or from_jobcomp(conf, missing, recs)
      on_records(ids, recs, complete)
      for _, id in ipairs(ids) do
        if jobs[id] then
          jobs[id].seen = true
        end
      end
    end
    if polling == 0 then
      delay = min(delay * 2, M.MAX_DELAY)
      schedule_poll()
    end
  end)
end

-- The watched jobs' ids by the slurm.conf of their cluster.
local function ids_by_cluster()
  local by_conf = {}
  for id, job in pairs(jobs) do
    local ids = by_conf[job.conf]
    if not ids then
      ids = {}
      by_conf[job.conf] = ids
    end
    ids[#ids + 1] = id
  end
  return by_conf
end

poll = function()
  poll_timer = nil
  for conf, ids in pairs(ids_by_cluster()) do
    poll_cluster(conf, ids)
  end
end

---------------------------------------------------------------------------
-- Submitting

local function sbatch_argv(ex, run, dir)
  local argv = { "sbatch", "--parsable", "--no-requeue", "--job-name=poengine", "--output=" .. dir .. "/stdout",
    "--error=" .. dir .. "/stderr" }
  local function add(flag, v)
    if v ~= nil then
      argv[#argv + 1] = flag .. "=" .. tostring(v)
    end
  end
  add("--partition", ex.partition)
  add("--account", ex.account)
  add("--qos", ex.qos)
  add("--cpus-per-task", ex.cpus_per_task)
  add("--mem", ex.mem)
  -- Slurm's own limit (whole minutes) only backs the engine's deadline up
  -- and tells the scheduler how long the job may take.
  add("--time", ex.time or (run.timeout and tostring(math.ceil((run.timeout + run.grace) / 60) + 1)))
  for _, a in ipairs(ex.extra_args or {}) do
    argv[#argv + 1] = a
  end
  argv[#argv + 1] = dir .. "/job.sh"
  return argv
end

local function on_cancel(_, job)
  job.canceled = true
  forget(job)
  if job.id then
    terminate(job)
    -- Then the job itself goes, pending or not; its files once it has.
    scancel(job, {})
  end
end

--- Submits spec (po.run's, checked here) as one batch job with the
--- executor settings ex; returns a future of the same result table a
--- local run gives (plus job_id, without pid). Without sbatch on PATH the
--- future fails with code "EUNSUPPORTED".
---@param spec table
---@param ex table po.executor settings
---@return poengine.Future
function M.run(spec, ex)
  local run = check_spec(spec)
  local fut = future.future()
  if not M.available() then
    fut:reject("po.run: executor \"slurm\" needs sbatch, squeue and scancel on PATH", "EUNSUPPORTED")
    return fut
  end
  job_seq = job_seq + 1
  local dir = process_dir(executor.shared_dir(ex)) .. "/" .. job_seq
  local job = { fut = fut, run = run, dir = dir, conf = ex.slurm_conf or "" }
  local ok, err = write_file(dir .. "/job.sh", script_of(run, dir), WRITE)
  if ok and run.stdin then
    ok, err = write_file(dir .. "/stdin", run.stdin, WRITE)
  end
  if not ok then
    fut:resolve(error_result("cannot write the job's script on the shared directory: " .. tostring(err)))
    return fut
  end
  fut.on_cancel, fut.cancel_arg = on_cancel, job
  jobcomp_path(job.conf) -- asked now, known by the time a job may need it
  local submit = client(job.conf, sbatch_argv(ex, run, dir))
  submit:on_settle(function()
    local r = submit:outcome()
    local id = r and r.status == "ok" and r.stdout:match("^%s*(%d+)")
    if not id then
      remove_dir(dir)
      local why = r and (r.error or (r.stderr ~= "" and r.stderr) or r.status) or "no result"
      fut:resolve(error_result("sbatch failed: " .. tostring(why):gsub("%s+$", "")))
      return
    end
    job.id = id
    if job.canceled then
      scancel(job, {})
      remove_dir(dir)
      return
    end
    jobs[id] = job
    watched = watched + 1
    poll_soon()
  end)
  return fut
end

--- True when the Slurm client commands (sbatch, squeue, scancel) are on PATH.
function M.available()
  if M._available == nil then
    local path = os.getenv("PATH") or ""
    local found = {}
    for _, cmd in ipairs { "sbatch", "squeue", "scancel" } do
      for d in path:gmatch("[^:]+") do
        local f = io.open(d .. "/" .. cmd, "rb")
        if f then
          f:close()
          found[#found + 1] = cmd
          break
        end
      end
    end
    M._available = #found == 3
  end
  return M._available
end

-- When the Lua state closes (the script's end, os.exit), the jobs still
-- watched are cancelled, as local children are killed then: a job nobody
-- will read would otherwise hold its node until Slurm's own time limit.
-- Synchronous, through the shell: the event loop is gone by then.
local function cancel_all()
  for conf, ids in pairs(ids_by_cluster()) do
    local env = conf ~= "" and "SLURM_CONF=" .. quote(conf) .. " " or ""
    os.execute(env .. "scancel --quiet " .. table.concat(ids, " ") .. " >/dev/null 2>&1")
  end
end
local closing = newproxy(true)
getmetatable(closing).__gc = cancel_all
M._closing = closing -- kept alive by the module until the state closes

--- The jobs this process is watching, for tests: their count.
function M.watched()
  return watched
end

return M
