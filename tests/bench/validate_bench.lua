-- The worker pool and po.validate: CPU-bound Lua validators on N workers
-- beside one worker, and in-process validators beside a Python reference of
-- the reference design's ParallelValidator (ThreadPoolExecutor,
-- max_workers = 4; tests/bench/baselines/parallel_validator.py).
local po = require "poengine"
local lib = require "tests.bench.lib"

local cores = po.pool.cpu_count()
po.validate.configure { concurrency = cores }

local function busy(ms)
  return function()
    local t_end = po.now() + ms / 1000
    local x = 0
    while po.now() < t_end do
      x = x + 1
    end
    return x > 0
  end
end

local function validators(count, fn)
  local list = {}
  for i = 1, count do
    list[i] = { name = "v" .. i, run = fn }
  end
  return list
end

-- CPU-bound validators: 16 of 25 ms each, on `workers` workers.
local cpu_list = validators(16, busy(25))
local function cpu_run(workers)
  return function()
    po.pool.configure { workers = workers }
    local report = po.validate.run(cpu_list, {}, { workers = workers })
    assert(report.passed)
  end
end
lib.compare {
  name = "po.pool",
  case = ("16 CPU-bound Lua validators (25 ms): %d workers vs 1 (ideal %dx)"):format(cores, cores),
  subject = { label = cores .. " workers", fn = cpu_run(cores) },
  baseline = { label = "1 worker", fn = cpu_run(1) },
  ops = 16, unit = "ms", runs = 5,
  goal = { min_speedup = 0.8 * cores },
}
po.pool.configure { workers = cores }

local function python(kind, count)
  local script = (os.getenv("POENGINE_SOURCE_DIR") or ".") .. "/tests/bench/baselines/parallel_validator.py"
  return function()
    local r = po.run_sync { argv = { "python3", script, kind, tostring(count) } }
    assert(r.status == "ok", r.stderr)
    return tonumber(r.stdout)
  end
end

local trivial = function() return true end
local n = 1000
lib.compare {
  name = "po.pool",
  case = "1,000 trivial validators: po.pool.submit + po.all vs Python ParallelValidator (4 threads)",
  subject = { label = "po.pool", fn = function()
    local futures = {}
    for i = 1, n do
      futures[i] = po.pool.submit(trivial, i)
    end
    assert(po.all(futures).n == n)
  end },
  baseline = { label = "Python", fn = python("trivial", n) },
  ops = n, unit = "us", runs = 7,
  goal = { min_speedup = 4 },
}

local trivial_list = validators(n, trivial)
lib.compare {
  name = "po.validate",
  case = "1,000 trivial validators: po.validate.run vs Python ParallelValidator (4 threads)",
  subject = { label = "po.validate", fn = function() assert(po.validate.run(trivial_list, {}).passed) end },
  baseline = { label = "Python", fn = python("trivial", n) },
  ops = n, unit = "us", runs = 7,
  goal = { min_speedup = 4 },
}

local busy_list = validators(100, busy(10))
lib.compare {
  name = "po.validate",
  case = ("100 validators of 10 ms CPU: po.validate.run (%d workers) vs Python ParallelValidator (4 threads, one GIL)")
    :format(cores),
  subject = { label = "po.validate", fn = function() assert(po.validate.run(busy_list, {}).passed) end },
  baseline = { label = "Python", fn = python("busy10ms", 100) },
  ops = 100, unit = "ms", runs = 5,
}
