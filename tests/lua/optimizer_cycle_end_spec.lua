-- How an optimizer run ends when a cycle cannot go on, and the stop rules:
-- a baseline that fails its own validators or its benchmark ends the run
-- with that reason (recorded as a failed cycle), a proposer that raises
-- raises out of the run, and stop.target / stop.stall_cycles end it when
-- they say. The program is bench_spin, its rounds in rounds.txt (its CPU
-- seconds: fewer rounds are faster).
local po = require "poengine"
local proc = require "tests.tools.proc"
local events = require "tests.tools.events"

local spin = (os.getenv("POENGINE_BUILD_DIR") or "build") .. "/tests/bench_spin"

-- points: the rounds proposed each cycle, in turn; extra: task fields.
local function spin_task(work, points, extra)
  local cycle = 0
  local task = {
    id = "spec-cycle-end",
    workdir = work,
    target_files = { "rounds.txt" },
    baseline_params = { rounds = 4000 },
    apply_params = function(params, dir)
      assert(po.files.write({ { path = "rounds.txt", content = params.rounds .. "\n" } }, { root = dir })[1].ok)
    end,
    method = function()
      cycle = cycle + 1
      return { { params = { rounds = points[math.min(cycle, #points)] } } }
    end,
    objective = {
      validator = po.validate.benchmark { name = "spin", argv = { "sh", "-c", spin .. " $(cat rounds.txt)" },
        metric = function(r) return tonumber(r.stdout) end },
      direction = "min", alpha = 0.01, min_effect = 0.05, confirm = false,
    },
    budget = { cycles = 3 },
  }
  for k, v in pairs(extra or {}) do
    task[k] = v
  end
  return task
end

describe("an optimizer run", function()
  local work, out
  before_each(function()
    work = proc.tempdir()
    out = proc.tempdir()
    assert(po.write_file(work .. "/rounds.txt", "4000\n"))
  end)
  after_each(function()
    proc.rmdir(work)
    proc.rmdir(out)
  end)

  local function failed_cycles(result)
    local list = {}
    for _, e in ipairs(events(result.events, "cycle")) do
      if e.failed then
        list[#list + 1] = e
      end
    end
    return list
  end

  it("ends when the baseline fails its own validators, saying which", function()
    local task = spin_task(work, { 2000 }, {
      validators = { { name = "not-4000", run = { "sh", "-c", "test $(cat rounds.txt) != 4000" } } } })
    local result = assert(po.optimizer.run(task, { output = out, quiet = true }))
    assert.matches("^error: the baseline fails its own validators: .*not%-4000", result.stopped)
    assert.are.equal(0, #result.accepted)
    local failed = failed_cycles(result)
    assert.are.equal(1, #failed)
    assert.are.equal(1, failed[1].cycle)
    assert.matches("^the baseline fails its own validators", failed[1].failed)
  end)

  it("ends when the baseline's benchmark fails in the timing phase", function()
    local task = spin_task(work, { 2000 })
    task.objective.validator = po.validate.benchmark { name = "spin",
      argv = { "sh", "-c", "r=$(cat rounds.txt); test $r != 4000 || { echo no baseline >&2; exit 3; }; " .. spin .. " $r" },
      metric = function(r) return tonumber(r.stdout) end }
    local result = assert(po.optimizer.run(task, { output = out, quiet = true }))
    assert.matches("^error: the baseline failed its benchmark: .*no baseline", result.stopped)
    assert.are.equal(1, #failed_cycles(result))
  end)

  it("raises the proposer's error, after recording the cycle as failed", function()
    local task = spin_task(work, { 2000 })
    task.method = function() error("the proposer broke", 0) end
    local ok, err = pcall(po.optimizer.run, task, { output = out, quiet = true })
    assert.is_false(ok)
    assert.matches("the proposer broke", tostring(err))
    local log = events(out .. "/events.jsonl", "cycle")
    assert.are.equal(1, #log)
    assert.matches("the proposer broke", log[1].failed)
  end)

  it("stops at the target score, and after stall_cycles cycles without a gain", function()
    -- 2000 rounds is accepted in cycle 1; the target (a score above the
    -- baseline's, which any accepted candidate beats) stops the run there.
    local result = assert(po.optimizer.run(spin_task(work, { 2000 }, { stop = { target = 1e9 } }),
      { output = out, quiet = true }))
    assert.are.equal("target", result.stopped)
    assert.are.equal(1, result.cycles)

    -- 8000 rounds is slower every time: two cycles without a gain, then stall.
    proc.rmdir(out)
    out = proc.tempdir()
    result = assert(po.optimizer.run(spin_task(work, { 8000, 16000, 32000 }, { stop = { stall_cycles = 2 } }),
      { output = out, quiet = true }))
    assert.are.equal("stall", result.stopped)
    assert.are.equal(2, result.cycles)
    assert.are.equal(0, #result.accepted)
  end)
end)
