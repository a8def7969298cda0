-- What an optimizer run leaves for the dashboards: the objective's
-- direction, each cycle's candidate outcomes and accepted candidate, and
-- at the end the final check beside the accepted chain; and a search task's
-- best point as best_params.json and, with write_params, a patch.
local po = require "poengine"
local proc = require "tests.tools.proc"

local build = os.getenv("POENGINE_BUILD_DIR") or "build"
local spin = build .. "/tests/bench_spin"

local events = require "tests.tools.events"

local function read(path)
  local f = assert(io.open(path, "rb"))
  local text = f:read("*a")
  f:close()
  return text
end

-- bench_spin with the rounds in rounds.txt: a point's rounds is its run
-- time; a "check" validator rejects a rounds.txt of 1.
local function spin_task(work, extra)
  local task = {
    id = "spec-report",
    workdir = work,
    target_files = { "rounds.txt" },
    baseline_params = { rounds = 20000 },
    apply_params = function(params, dir)
      assert(po.files.write({ { path = "rounds.txt", content = tostring(params.rounds) .. "\n" } }, { root = dir })[1].ok)
    end,
    method = function()
      return { { params = { rounds = 10000 } }, { params = { rounds = 20000 } }, { params = { rounds = 1 } } }
    end,
    validators = { { name = "check", run = { "sh", "-c", "test \"$(cat rounds.txt)\" != 1" } } },
    objective = {
      validator = po.validate.benchmark { name = "spin", argv = { "sh", "-c", spin .. " $(cat rounds.txt)" },
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

describe("an optimizer run's report", function()
  local work, out
  before_each(function()
    work = proc.tempdir()
    out = proc.tempdir()
    assert(po.files.write({ { path = "rounds.txt", content = "20000\n" } }, { root = work })[1].ok)
  end)
  after_each(function()
    proc.rmdir(work)
    proc.rmdir(out)
  end)

  it("gives the dashboards the direction, the outcomes, the accepted chain and the final check", function()
    local result = assert(po.optimizer.run(spin_task(work), { output = out, quiet = true }))
    assert.are.equal(1, result.cycles, result.stopped)
    assert.are.equal(1, #result.accepted)

    -- The counts agree with what the event log says of each candidate.
    local want = { proposed = 0, unusable = 0, faster = 0, same = 0, slower = 0 }
    for _, c in ipairs(events(result.events, "candidate")) do
      want.proposed = want.proposed + 1
      if c.verdict then
        want[c.verdict] = want[c.verdict] + 1
      end
    end
    assert.are.equal(3, want.proposed)
    assert.are.equal(1, want.faster)

    local d = po.dashboard.new(result.store, { sections = { "progress", "run" } })
    local doc = assert(po.json.decode(assert(d:render("json"))))
    local run = doc.sections.run
    assert.are.equal("min", run.direction)
    assert.are.equal(1, #run.cycles)
    local cy = run.cycles[1]
    for k, n in pairs(want) do
      assert.are.equal(n, cy[k], k)
    end
    assert.are.equal(1, cy.failed)
    assert.are.equal("check 1", cy.failed_stages)
    assert.are.equal("c1.1", cy.accepted)

    assert.are.equal(1, #run.accepted)
    local a = run.accepted[1]
    assert.are.equal("1", a.cycle)
    assert.are.equal("c1.1", a.id)
    assert.are.equal("rounds=10000", a.change)
    assert.are.equal("faster", a.verdict)
    assert.are.equal(result.accepted[1].speedup, a.speedup)
    assert.are.equal(result.accepted[1].ci_low, a.ci_low)
    assert.are.equal(result.chain_speedup, run.chain_speedup)

    assert.are.equal(result.final.verdict, run.final.verdict)
    assert.are.equal(result.final.speedup, run.final.speedup)
    assert.are.equal(result.final.ci_high, run.final.ci_high)
    assert.are.equal(result.confirmed, run.confirmed)
    if not result.confirmed then
      assert.are.equal(result.warning, run.warning)
    end

    -- Progress in the objective's direction: the best is the lowest time.
    local p = doc.sections.progress
    assert.are.equal("min", p.direction)
    assert.are.equal(result.best_score, p.best_score)
    assert.is_true(p.best_score < p.first_score)
    assert.are.equal(p.first_score - p.best_score, p.improvement)
    assert.are.equal(1, p.improvements)
    assert.are.equal("1", cy.cycle)

    -- The text dashboard says it in words.
    local text = assert(d:render("text"))
    assert.matches("rounds=10000", text, 1, true)
    assert.matches("lower is better", text, 1, true)
  end)

  it("writes a search task's best point as best_params.json and, with write_params, a patch", function()
    local task = spin_task(work, {
      method = "search", strategy = "grid", space = { rounds = { 20000, 10000 } }, candidates_per_cycle = 1,
      validators = {},
      write_params = function(params)
        return { ["rounds.txt"] = tostring(params.rounds) .. "\n" }
      end,
    })
    local result = assert(po.optimizer.run(task, { output = out, quiet = true }))
    assert.are.equal(1, #result.accepted)
    assert.are.same({ rounds = 10000 }, result.best_params)
    assert.are.equal(out .. "/best_params.json", result.params_file)
    assert.are.same({ rounds = 10000 }, po.json.decode(read(result.params_file)))
    assert.are.equal(out .. "/best.patch", result.patch)
    local patch = read(result.patch)
    assert.matches("\n%-20000\n%+10000\n", patch)
    -- The patch applies to the workdir as it is.
    local diff = require "poengine.optimizer.diff"
    local parsed = assert(diff.parse(patch))
    assert.are.equal(1, #parsed)
    assert.are.equal("rounds.txt", parsed[1].path)
    assert.are.equal("10000\n", (assert(diff.apply(read(work .. "/rounds.txt"), parsed[1]))))
  end)
end)
