-- The Slurm executor's per-job overhead: 100 trivial jobs (`true`) submitted
-- at once through po.run{ executor = "slurm" } (one squeue poller with
-- backoff) beside the same 100 jobs through a shell loop of `sbatch --wait`
-- (each in the background, then `wait`) and through `srun` (the same); then
-- the latency of one job at a time (10 in a row, each waited for). On the
-- one-node Slurm of scripts/cluster (started here unless the environment
-- names one, and always taken down). Figures per job.
-- SLURM_BENCH_JOBS, SLURM_BENCH_RUNS: other counts; SLURM_BENCH_ONLY =
-- "parallel" or "serial": only those rows.
local po = require "poengine"
local lib = require "tests.bench.lib"
local cluster = require "tests.tools.slurm_cluster"

local n = tonumber(os.getenv("SLURM_BENCH_JOBS")) or 100
local runs = tonumber(os.getenv("SLURM_BENCH_RUNS")) or 3
local only = os.getenv("SLURM_BENCH_ONLY")
local serial_n = 10

local env = cluster.up()
local ok, err = pcall(function()
  po.executor.configure { kind = "slurm", slurm_conf = env.SLURM_CONF, shared_dir = env.POENGINE_SHARED_DIR }

  local function engine()
    local futs = {}
    for i = 1, n do
      futs[i] = po.run { argv = { "true" }, executor = "slurm" }
    end
    for _, f in ipairs(futs) do
      local r = assert(f:wait())
      assert(r.status == "ok", r.error or r.stderr)
    end
  end

  -- n copies of a command in the background, then wait: the shell's way
  -- of running n jobs at once.
  local function shell_loop(command)
    return function()
      local script = ("for i in $(seq %d); do %s & done; wait"):format(n, command)
      local r = po.run_sync { argv = { "bash", "-c", script }, env = { SLURM_CONF = env.SLURM_CONF } }
      assert(r.status == "ok", r.stderr)
    end
  end

  local function one_by_one()
    for _ = 1, serial_n do
      local r = assert(po.run({ argv = { "true" }, executor = "slurm" }):wait())
      assert(r.status == "ok", r.error or r.stderr)
    end
  end

  local function serial_loop(command)
    return function()
      local script = ("for i in $(seq %d); do %s || exit 1; done"):format(serial_n, command)
      local r = po.run_sync { argv = { "bash", "-c", script }, env = { SLURM_CONF = env.SLURM_CONF } }
      assert(r.status == "ok", r.stderr)
    end
  end

  local out = env.POENGINE_SHARED_DIR .. "/bench.out"
  local sbatch_wait = "sbatch --quiet --wait --output=" .. out .. " --wrap true"
  local rows = {
    { "parallel", n, "at once", engine, "a shell loop of `sbatch --wait`", "sbatch --wait", shell_loop(sbatch_wait) },
    { "parallel", n, "at once", engine, "a shell loop of `srun`", "srun", shell_loop("srun --quiet true") },
    { "serial", serial_n, "one at a time", one_by_one, "`sbatch --wait` in a loop", "sbatch --wait",
      serial_loop(sbatch_wait) },
    { "serial", serial_n, "one at a time", one_by_one, "`srun` in a loop", "srun", serial_loop("srun --quiet true") },
  }
  for _, row in ipairs(rows) do
    local kind, count, how, subject, versus, label, baseline = unpack(row)
    if not only or only == kind then
      lib.compare {
        name = "slurm executor",
        case = ("%d × `true` %s through po.run{ executor = \"slurm\" }, vs %s"):format(count, how, versus),
        subject = { label = "po.run (slurm)", fn = subject },
        baseline = { label = label, fn = baseline },
        ops = count, unit = "ms", runs = runs, warmup = false,
      }
    end
  end
end)
cluster.down(env)
assert(ok, err)
