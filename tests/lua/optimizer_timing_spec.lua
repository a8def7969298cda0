-- The optimizer's timing phase: it starts only once every validation of
-- the cycle has ended, it tells a 2x faster candidate from an identical
-- one, and the run's final side-by-side check is reported beside the
-- accepted chain (in the result and in `poengine optimize`'s output).
local po = require "poengine"
local proc = require "tests.tools.proc"

local build = os.getenv("POENGINE_BUILD_DIR") or "build"
local spin = build .. "/tests/bench_spin"
local q = proc.quote

local events = require "tests.tools.events"

-- A project whose "program" is bench_spin with the rounds in rounds.txt:
-- a candidate's params.rounds is its run time. In the final check's
-- sandboxes (named final-*) every version spins `final_rounds` when that
-- is given: a machine whose speed changed between the cycles and the end.
local function spin_task(work, extra, final_rounds)
  local script = spin .. " $(cat rounds.txt)"
  if final_rounds then
    script = "case $PWD in */final-*) " .. spin .. " " .. final_rounds .. ";; *) " .. script .. ";; esac"
  end
  local task = {
    id = "spec-timing",
    workdir = work,
    target_files = { "notes.txt" },
    baseline_params = { rounds = 20000 },
    apply_params = function(params, dir)
      assert(po.files.write({ { path = "rounds.txt", content = tostring(params.rounds) } }, { root = dir })[1].ok)
    end,
    method = function()
      return { { params = { rounds = 10000 } }, { params = { rounds = 20000 } } }
    end,
    validators = { { name = "slow check", run = { "sleep", "0.2" } } },
    -- A stricter rule than the default, so an identical candidate being
    -- called faster (at most alpha of the time by design) is rarer still.
    objective = {
      -- The CPU seconds bench_spin prints: the verdicts under test must not
      -- hang on how busy the machine is.
      validator = po.validate.benchmark { name = "spin", argv = { "sh", "-c", script },
        metric = function(r) return tonumber(r.stdout) end },
      direction = "min", alpha = 0.01, min_effect = 0.05,
    },
    budget = { cycles = 1 },
  }
  for k, v in pairs(extra or {}) do
    task[k] = v
  end
  return task
end

describe("the optimizer's timing phase", function()
  local work, out
  before_each(function()
    work = proc.tempdir()
    out = proc.tempdir()
    assert(po.files.write({ { path = "notes.txt", content = "spin\n" } }, { root = work })[1].ok)
  end)
  after_each(function()
    proc.rmdir(work)
    proc.rmdir(out)
  end)

  it("times only after every validation has ended, pinned to one CPU, and accepts 2x but not 1x", function()
    local result = assert(po.optimizer.run(spin_task(work), { output = out, quiet = true }))
    assert.are.equal(1, result.cycles, result.stopped)

    local cand = events(result.events, "candidate")
    assert.are.equal(2, #cand)
    assert.are.equal("faster", cand[1].verdict)
    assert.is_true(cand[1].accepted)
    assert.is_true(cand[1].speedup > 1.5, tostring(cand[1].speedup))
    assert.is_true(cand[1].ci_low <= cand[1].speedup and cand[1].speedup <= cand[1].ci_high)
    -- Timed a second time in fresh rounds before it was accepted, and
    -- found faster by more than min_effect (the test with a margin).
    assert.are.equal("faster", cand[1].confirm.verdict)
    assert.is_true(cand[1].confirm.margin)
    assert.is_nil(cand[2].confirm)
    assert.are_not.equal("faster", cand[2].verdict)
    assert.is_false(cand[2].accepted)

    -- Every timed run (the cycle's and the final check's) starts after the
    -- last validation of its phase ends: no run overlaps any validation.
    local cpus = po.cpus()
    local phases = events(result.events, "timing")
    for _, f in ipairs(events(result.events, "final")) do
      phases[#phases + 1] = f
    end
    assert.are.equal(2, #phases)
    for _, ph in ipairs(phases) do
      assert.is_true(#ph.validations >= 2)
      assert.is_true(#ph.runs >= 2 * 7) -- warm-up and at least 6 timed rounds of two arms
      for _, run in ipairs(ph.runs) do
        assert.is_true(run.finish >= run.start)
        for _, v in ipairs(ph.validations) do
          assert.is_true(run.start >= v.finish or run.finish <= v.start,
            ("run of %s overlaps the validation of %s"):format(run.arm, v.candidate))
        end
        if #cpus >= 2 then
          assert.are.equal(cpus[#cpus], run.cpu)
        else
          assert.is_nil(run.cpu)
        end
      end
    end
    -- The baseline's validation is a span too, and the candidates'.
    local names = {}
    for _, v in ipairs(phases[1].validations) do
      names[v.candidate] = true
    end
    assert.is_true(names.baseline and names["c1.1"] and names["c1.2"])

    -- The final check agrees with the path, and both are in the result.
    assert.are.equal("faster", result.final.verdict)
    assert.is_true(result.confirmed)
    assert.is_nil(result.warning)
    assert.are.equal(cand[1].speedup, result.chain_speedup)
    assert.is_true(result.final.ci_low <= result.final.speedup)
  end)

  it("says on the cycle line, and in the timing event, when the timing was noisy", function()
    -- Every other measurement doubled, as when another process takes half
    -- the core for a while.
    local k = 0
    local task = spin_task(work)
    task.objective.validator = po.validate.benchmark { name = "spin", argv = { "sh", "-c", spin .. " $(cat rounds.txt)" },
      metric = function(r)
        k = k + 1
        local v = tonumber(r.stdout)
        return k % 2 == 0 and 2 * v or v
      end }
    local lines = {}
    local result = assert(po.optimizer.run(task, { output = out, progress = function(l) lines[#lines + 1] = l end }))
    local timing = require "poengine.optimizer.timing"
    local ev = events(result.events, "timing")[1]
    assert.is_true(ev.noise >= timing.NOISY, tostring(ev.noise))
    local said
    for _, l in ipairs(lines) do
      if l:match("^cycle 1 of 1: ") then
        said = l
      end
    end
    assert.matches("; timing noisy: the baseline's median run took [%d.]+x its fastest tenth", said)
  end)

  it("says plainly when the final check does not confirm the accepted chain", function()
    local result = assert(po.optimizer.run(spin_task(work, nil, 20000), { output = out, quiet = true }))
    assert.are.equal(1, #result.accepted)
    assert.are_not.equal("faster", result.final.verdict)
    assert.is_false(result.confirmed)
    assert.matches("^the final side%-by%-side check does not confirm the improvement", result.warning)
  end)

  it("poengine optimize shows the warning first and the chain beside the final check", function()
    -- The task as a file, run through the CLI.
    local task_file = work .. "/task.lua"
    local f = assert(io.open(task_file, "w"))
    f:write(([[
local spin = %q
return {
  id = "cli-timing", workdir = %q, target_files = { "notes.txt" },
  baseline_params = { rounds = 20000 },
  apply_params = function(params, dir)
    assert(po.files.write({ { path = "rounds.txt", content = tostring(params.rounds) } }, { root = dir })[1].ok)
  end,
  method = function() return { { params = { rounds = 10000 } } } end,
  objective = { direction = "min", alpha = 0.01, min_effect = 0.05,
    validator = po.validate.benchmark { name = "spin", argv = { "sh", "-c",
    "case $PWD in */final-*) " .. spin .. " 20000;; *) " .. spin .. " $(cat rounds.txt);; esac" },
    metric = function(r) return tonumber(r.stdout) end } },
  budget = { cycles = 1 },
}
]]):format(spin, work))
    f:close()
    local status, text, err = proc.sh(q(po.executable()) .. " optimize " .. q(task_file) .. " --quiet --output " .. q(out))
    assert.are.equal(0, status, err)
    assert.matches("^WARNING: the final side%-by%-side check does not confirm the improvement", text)
    assert.matches("\n  cycle 1: accepted c1%.1, [%d.]+x %[[%d.]+, [%d.]+%] faster than the version before it", text)
    assert.matches("\naccepted chain: [%d.]+x %(the product of the cycles' speedups%); final check: [%d.]+x "
      .. "%[[%d.]+, [%d.]+%], %a+, %d+ runs each\n", text)
  end)

  it("knows the objective's direction on the cycle lines", function()
    -- A throughput (higher is better) that is the candidate's n itself.
    local lines = {}
    local result = assert(po.optimizer.run({
      id = "spec-max", workdir = work, target_files = { "notes.txt" },
      method = "search", strategy = "grid", space = { n = { 1, 2, 3 } }, baseline_params = { n = 1 },
      candidates_per_cycle = 1,
      objective = {
        direction = "max",
        validator = po.validate.benchmark { name = "rate", argv = { "cat", "params.json" },
          metric = function(r) return po.json.decode(r.stdout).n end },
      },
      budget = { cycles = 2 },
    }, { output = out, progress = function(line) lines[#lines + 1] = line end, verbose = true }))
    assert.are.equal(2, #result.accepted)
    assert.are.equal(3, result.best_score)
    assert.are.equal(3, result.improvement)
    local cycle_lines = {}
    for _, l in ipairs(lines) do
      if l:match("^cycle") then
        cycle_lines[#cycle_lines + 1] = l
      end
    end
    assert.matches("best score 2, 2%.00x better than the original's %(baseline 1%)", cycle_lines[1])
    assert.matches("best score 3, 3%.00x better than the original's %(baseline 2%)", cycle_lines[2])
    -- The verbose candidate lines carry what changed, the verdict, speedup and interval.
    -- (9 runs: the first look, at 6, cannot spend enough of alpha for any
    -- 6-against-6 evidence; see decide.spending.)
    assert.matches("^  c1%.1 %(n=2%): faster, 2x %[2, 2%], 9 runs; timed again: faster, 2x %[2, 2%], 9 runs$", lines[1])
  end)
end)
