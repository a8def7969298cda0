-- The Slurm executor against a real one-node Slurm (scripts/cluster: munged,
-- slurmctld, slurmd): results like local ones (stdout, stderr, exit code),
-- a timeout that kills a job ignoring SIGTERM and its grandchild, 50
-- validators through Slurm in input order, cancel, and an optimizer cycle
-- whose validators run as jobs on sandboxes of the shared directory. Run
-- alone, the spec brings up its own cluster and takes it down in teardown.
local po = require "poengine"
local proc = require "tests.tools.proc"
local cluster = require "tests.tools.slurm_cluster"

-- The cluster for one describe block: up in its setup (the Slurm
-- executor configured for it), down in its teardown. Returns a table whose
-- env and shared fields are set once setup has run.
local function with_cluster()
  local c = {}
  setup(function()
    c.env = cluster.up()
    c.shared = c.env.POENGINE_SHARED_DIR
    po.executor.configure { kind = "slurm", slurm_conf = c.env.SLURM_CONF, shared_dir = c.shared }
  end)
  teardown(function()
    po.executor.configure { kind = "local" }
    cluster.down(c.env)
  end)
  return c
end

describe("executor slurm", function()
  local c = with_cluster()
  local env, shared
  setup(function()
    env, shared = c.env, c.shared
  end)

  local function slurm_run(spec)
    spec.executor = "slurm"
    return po.run(spec):wait()
  end

  -- The job ids Slurm has a record of, as squeue lists them.
  local function known_to_slurm(id)
    local r = cluster.client(env, { "squeue", "--noheader", "--states=all", "--jobs=" .. id, "--Format=JobID" })
    return r.stdout:match("%d+") == tostring(id)
  end

  it("returns the same result table as a local run: stdout, stderr, exit code, status", function()
    local spec = { argv = { "sh", "-c", "echo out; echo err >&2; exit 3" } }
    local l = assert(po.run(spec):wait())
    local s = assert(slurm_run { argv = spec.argv })
    for _, k in ipairs { "status", "code", "signal", "stdout", "stderr", "truncated" } do
      assert.are.same(l[k], s[k], k)
    end
    assert.are.equal("failed", s.status)
    assert.are.equal(3, s.code)
    assert.are.equal("out\n", s.stdout)
    assert.are.equal("err\n", s.stderr)
    assert.is_number(s.duration)
    assert.is_true(known_to_slurm(s.job_id))
    -- the same keys, with job_id where a local run has its pid
    local lk, sk = {}, {}
    for k in pairs(l) do lk[#lk + 1] = k == "pid" and "job_id" or k end
    for k in pairs(s) do sk[#sk + 1] = k end
    table.sort(lk)
    table.sort(sk)
    assert.are.same(lk, sk)
    local ok = assert(slurm_run { argv = { "sh", "-c", "cat; pwd; echo \"$GREETING\"" }, stdin = "in\n", cwd = shared,
      env = { GREETING = "it's me" } })
    assert.are.equal("ok", ok.status)
    assert.are.equal(0, ok.code)
    assert.are.equal("in\n" .. shared .. "\nit's me\n", ok.stdout)
  end)

  it("reports a program or a directory that is not there as status error, as a local run does", function()
    local missing = { argv = { "no-such-program-poengine" } }
    local l, s = po.run(missing):wait(), slurm_run { argv = missing.argv }
    assert.are.equal("error", s.status)
    assert.are.equal(l.error, s.error)
    local nodir = { argv = { "true" }, cwd = "/no/such/dir" }
    l, s = po.run(nodir):wait(), slurm_run { argv = nodir.argv, cwd = nodir.cwd }
    assert.are.equal("error", s.status)
    assert.are.equal(l.error, s.error)
  end)

  it("gives status error with sbatch's message when the job cannot be submitted", function()
    local r = assert(po.run { argv = { "true" }, executor = { kind = "slurm", partition = "no-such-partition" } }:wait())
    assert.are.equal("error", r.status)
    assert.matches("^sbatch failed: .*partition", r.error)
  end)

  it("cuts stdout at output_limit and says so", function()
    local r = assert(slurm_run { argv = { "sh", "-c", "printf 0123456789" }, output_limit = 4 })
    assert.are.equal("0123", r.stdout)
    assert.is_true(r.truncated)
  end)

  it("makes command validators Slurm jobs with POENGINE_EXECUTOR=slurm; po.run stays local", function()
    local script = proc.tempfile([[
      local po = require "poengine"
      local report = po.validate.run({ po.validate.command { argv = { "sh", "-c", "echo job=$SLURM_JOB_ID" } } },
        { dir = os.getenv("POENGINE_SHARED_DIR") })
      local here = po.run_sync { argv = { "sh", "-c", "echo job=$SLURM_JOB_ID" } }
      io.write(report.results[1].stdout, here.stdout)
    ]], ".lua")
    local status, out, err = proc.sh("POENGINE_EXECUTOR=slurm SLURM_CONF=" .. proc.quote(env.SLURM_CONF)
      .. " POENGINE_SHARED_DIR=" .. proc.quote(shared) .. " " .. proc.quote(proc.bin) .. " " .. proc.quote(script))
    os.remove(script)
    assert.are.equal(0, status, err)
    assert.matches("^job=%d+\njob=\n$", out)
  end)

  it("kills a job that ignores SIGTERM at its deadline, its grandchild too: status timeout", function()
    local pidfile = shared .. "/grandchild." .. math.random(1e9)
    local script = "trap '' TERM; sh -c 'trap \"\" TERM; echo $$ > " .. pidfile
      .. "; while :; do sleep 1; done' & while :; do sleep 1; done"
    local r = assert(slurm_run { argv = { "sh", "-c", script }, timeout = 2, kill_grace = 1 })
    assert.are.equal("timeout", r.status)
    assert.are.equal("SIGKILL", r.signal)
    assert.is_nil(r.code)
    assert.are.equal("", r.stderr) -- slurmstepd's note of the cancel is not the program's
    local gc = assert(proc.read(pidfile):match("%d+"))
    os.remove(pidfile)
    -- gone, or a zombie nobody reaps (in this container PID 1 does not)
    local stat = io.open("/proc/" .. gc .. "/stat")
    local state = stat and stat:read("*a"):match("%) (%a)")
    if stat then
      stat:close()
    end
    assert.is_true(state == nil or state == "Z", "grandchild " .. gc .. " still " .. tostring(state))
  end)

  it("runs 50 validators through Slurm, results in input order", function()
    local validators = {}
    for i = 1, 50 do
      validators[i] = po.validate.command { name = "v" .. i, argv = { "sh", "-c", "echo " .. i .. "; exit " .. i % 2 },
        executor = "slurm" }
    end
    local report = po.validate.run(validators, { dir = shared })
    assert.are.equal(50, #report.results)
    for i, r in ipairs(report.results) do
      assert.are.equal("v" .. i, r.name)
      assert.are.equal(i .. "\n", r.stdout)
      assert.are.equal(i % 2 == 0, r.passed)
      assert.are.equal(i % 2, r.details.code)
    end
    assert.are.equal(0, require("poengine.executor.slurm").watched())
    -- every job's files are gone from the shared directory
    for _, e in ipairs(assert(po.files.list(shared))) do
      assert.is_nil(e.name:match("^poengine%-"), e.name)
    end
  end)

  it("skips the Slurm validators not yet started after a failure with fail_fast", function()
    local report = po.validate.run({
      po.validate.command { name = "fails", argv = { "false" } },
      po.validate.command { name = "later", argv = { "true" } },
    }, { dir = shared }, { executor = "slurm", fail_fast = true, workers = 1 })
    assert.are.equal("failed", report.results[1].status)
    assert.are.equal("skipped", report.results[2].status)
  end)

  -- The job's state once it has ended (CANCELLED, COMPLETED or FAILED), as
  -- squeue reports it; the last state seen if it has not ended in 30 s.
  local function final_state(id)
    local state
    for _ = 1, 600 do
      local r = cluster.client(env, { "squeue", "--noheader", "--states=all", "--jobs=" .. id, "--Format=State" })
      state = r.stdout:match("%u+")
      if state == "CANCELLED" or state == "COMPLETED" or state == "FAILED" then
        break
      end
      po.sleep(0.05)
    end
    return state
  end

  it("cancels the job when the future is canceled", function()
    local fut = po.run { argv = { "sleep", "300" }, executor = "slurm" }
    local slurm = require "poengine.executor.slurm"
    -- wait until the poller has seen it (it has a job id then)
    local id
    for _ = 1, 600 do
      local r = cluster.client(env, { "squeue", "--noheader", "--states=RUNNING", "--name=poengine", "--Format=JobID" })
      id = r.stdout:match("%d+")
      if id then
        break
      end
      po.sleep(0.05)
    end
    assert.is_not_nil(id, "the job never ran")
    assert.is_true(fut:cancel())
    local _, _, code = fut:wait()
    assert.are.equal("ECANCELED", code)
    assert.are.equal(0, slurm.watched())
    assert.are.equal("CANCELLED", final_state(id))
  end)

  it("cancels the jobs still running when the script exits, as local children are killed", function()
    local script = proc.tempfile([[
      local po = require "poengine"
      po.run { argv = { "sleep", "300" }, executor = "slurm" }
      local slurm = require "poengine.executor.slurm"
      -- exit once Slurm runs it (the poller has its record by then)
      for _ = 1, 600 do
        local r = po.run_sync { argv = { "squeue", "--noheader", "--states=RUNNING", "--name=poengine", "--Format=JobID" } }
        local id = r.stdout:match("%d+")
        if id then
          io.write(id)
          break
        end
        po.sleep(0.05)
      end
      assert(slurm.watched() == 1)
    ]], ".lua")
    local status, out, err = proc.sh("SLURM_CONF=" .. proc.quote(env.SLURM_CONF) .. " POENGINE_SHARED_DIR="
      .. proc.quote(shared) .. " " .. proc.quote(proc.bin) .. " " .. proc.quote(script))
    os.remove(script)
    assert.are.equal(0, status, err)
    local id = assert(out:match("^%d+$"), "the job never ran: " .. out)
    assert.are.equal("CANCELLED", final_state(id))
  end)

  it("runs an optimizer cycle whose validators are Slurm jobs on sandboxes of the shared directory", function()
    local work, out = proc.tempdir(), proc.tempdir()
    local log = shared .. "/optimizer-" .. math.random(1e9) .. ".log"
    assert(po.write_file(work .. "/notes.txt", "n\n"))
    local result = assert(po.optimizer.run({
      id = "spec-slurm", workdir = work, target_files = { "notes.txt" },
      method = "search", strategy = "grid", space = { n = { 1, 2 } }, baseline_params = { n = 1 },
      candidates_per_cycle = 1, executor = "slurm", shared_dir = shared,
      validators = {
        po.validate.command { name = "where", argv = { "sh", "-c", "echo \"$SLURM_JOB_ID $PWD\" >> " .. log } },
      },
      objective = {
        direction = "max",
        validator = po.validate.benchmark { name = "rate", argv = { "cat", "params.json" }, repeats = 2, warmup = 0,
          metric = function(r) return po.json.decode(r.stdout).n end },
      },
      budget = { cycles = 1 },
    }, { output = out, quiet = true }))
    proc.rmdir(work)
    proc.rmdir(out)
    assert.are.equal(1, #result.accepted)
    assert.are.equal(2, result.best_score)
    local lines = 0
    for line in io.lines(log) do
      local job, dir = line:match("^(%d+) (%S+)$")
      assert.is_not_nil(job, line)
      assert.are.equal(shared .. "/spec-slurm/sandboxes/", dir:sub(1, #shared + #"/spec-slurm/sandboxes/"))
      lines = lines + 1
    end
    os.remove(log)
    assert.is_true(lines >= 2, "validated " .. lines .. " sandboxes") -- the baseline and the candidate, at least
  end)
end)

describe("executor slurm, timing", function()
  local c = with_cluster()
  local env, shared
  setup(function()
    env, shared = c.env, c.shared
  end)

  it("times on Slurm with timing_executor = \"slurm\", each sample an --exclusive job", function()
    local work, out = proc.tempdir(), proc.tempdir()
    local log = shared .. "/timing-" .. math.random(1e9) .. ".log"
    assert(po.write_file(work .. "/notes.txt", "n\n"))
    local result = assert(po.optimizer.run({
      id = "spec-slurm-timing", workdir = work, target_files = { "notes.txt" },
      method = "search", strategy = "grid", space = { n = { 1, 2 } }, baseline_params = { n = 1 },
      candidates_per_cycle = 1, executor = "slurm", shared_dir = shared, timing_executor = "slurm",
      validators = {},
      objective = {
        direction = "max", confirm = false,
        validator = po.validate.benchmark { name = "rate", warmup = 0,
          argv = { "sh", "-c", "echo \"$SLURM_JOB_ID\" >> " .. log .. "; cat params.json" },
          metric = function(r) return po.json.decode(r.stdout).n end },
      },
      budget = { cycles = 1 },
    }, { output = out, quiet = true }))
    proc.rmdir(work)
    proc.rmdir(out)
    assert.are.equal(2, result.best_score)
    local jobs = {}
    for line in io.lines(log) do
      -- the timing phase's samples are jobs; the benchmark's own runs in
      -- the validation phase stay local (an empty line)
      if line ~= "" then
        assert.matches("^%d+$", line)
        jobs[#jobs + 1] = line
      end
    end
    os.remove(log)
    assert.is_true(#jobs >= 4, #jobs .. " samples on Slurm")
    -- and each job asked for its node alone
    local r = cluster.client(env, { "scontrol", "show", "job", "-o", jobs[#jobs] })
    assert.matches("OverSubscribe=NO", r.stdout)
  end)
end)

describe("executor slurm, bad input", function()
  it("raises naming the argument", function()
    assert.has_error(function() po.run { argv = { "true" }, executor = "pbs" } end,
      "po.run: executor must be \"local\", \"slurm\", \"default\" or a table { kind = ... }, got \"pbs\"")
    assert.has_error(function() po.run { argv = { "true" }, executor = "slurm", cpu = 0 } end,
      "po.run: cpu (pinning to a core of this machine) cannot be used with executor \"slurm\"")
    assert.has_error(function() po.run { argv = {}, executor = "slurm" } end, "po.run: argv must not be empty")
    assert.has_error(function() po.executor.configure { kind = "slurm", cpus_per_task = 0 } end,
      "po.executor.configure: cpus_per_task must be a whole number of at least 1")
    assert.has_error(function() po.optimizer.run { id = "x", workdir = ".", target_files = { "a" }, timing_executor = 1,
      objective = { validator = po.validate.benchmark { argv = { "true" } } } } end,
      "po.optimizer: task.timing_executor: executor must be \"local\", \"slurm\", \"default\" or a table { kind = ... }, got number")
    assert.has_error(function() po.executor.configure { kind = "slurm", partiton = "x" } end,
      "po.executor.configure: unknown option 'partiton'")
  end)

  it("fails with EUNSUPPORTED when sbatch is not on PATH", function()
    local script = proc.tempfile([[
      local po = require "poengine"
      local r, err, code = po.run({ argv = { "true" }, executor = "slurm" }):wait()
      io.write(tostring(r), " ", code, " ", err)
    ]], ".lua")
    local status, out = proc.sh("PATH=/nonexistent " .. proc.quote(proc.bin) .. " " .. proc.quote(script))
    os.remove(script)
    assert.are.equal(0, status)
    assert.are.equal("nil EUNSUPPORTED po.run: executor \"slurm\" needs sbatch, squeue and scancel on PATH", out)
  end)
end)
