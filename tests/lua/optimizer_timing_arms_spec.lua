-- The timing phase's arms (poengine.optimizer.timing.run) with objective
-- validators whose figures the spec sets, so every verdict and failure is
-- known in advance: a validator without `measure` run whole once per arm,
-- and one with `measure` whose arms fail at the first run, midway, or give
-- a figure that is not a positive number.
local po = require "poengine"
local timing = require "poengine.optimizer.timing"
local proc = require "tests.tools.proc"

-- Deterministic jitter around a centre: the k-th figure of an arm.
local function figure(centre, k)
  return centre * (1 + 0.01 * (((k * 7919) % 11) - 5) / 5)
end

describe("the timing phase with a validator run whole (no measure)", function()
  local dirs
  before_each(function()
    dirs = {}
    -- base: figures around 2; fast: around 1; broken: exits 1; bare: passes without figures
    for name, script in pairs {
      base = "echo 2", fast = "echo 1", broken = "echo broken >&2; exit 1", bare = "echo none",
    } do
      dirs[name] = proc.tempdir()
      assert(po.files.write({ { path = "figure.sh", content = script .. "\n" } }, { root = dirs[name] })[1].ok)
    end
  end)
  after_each(function()
    for _, d in pairs(dirs) do
      proc.rmdir(d)
    end
  end)

  local validator = {
    name = "figures",
    run = { "sh", "figure.sh" },
    parse = function(result)
      if result.code ~= 0 then
        return false, { error = result.stderr }
      end
      local centre = tonumber(result.stdout)
      if not centre then
        return true, {} -- passed, but no median
      end
      local samples = {}
      for k = 1, 8 do
        samples[k] = figure(centre, k)
      end
      return true, po.validate.stats(samples)
    end,
  }
  local function arms(...)
    local list = { [0] = { id = "baseline", cand = { dir = dirs.base } } }
    for i, name in ipairs { ... } do
      list[i] = { id = name, cand = { dir = dirs[name] } }
    end
    return list
  end

  it("compares each arm's reported figures with the baseline's, each arm run once in a seeded order", function()
    local res = assert(timing.run({ validator = validator, direction = "min" }, arms("fast", "broken", "bare"), { seed = 3 }))
    assert.are.equal(1, res.rounds)
    assert.is_true(math.abs(res.baseline.median - 2) < 0.05, tostring(res.baseline.median))
    local fast = res.results[1]
    assert.are.equal("faster", fast.verdict)
    assert.is_true(math.abs(fast.speedup - 2) < 0.05, tostring(fast.speedup))
    assert.are.equal("mann-whitney", fast.rule)
    -- the parse function failed it without errors of its own: status and stderr say why
    assert.are.equal("failed: broken", res.results[2].failed)
    assert.are.equal("the objective validator reported no median", res.results[3].failed)
    -- one span per arm, no pinning, and the same order for the same seed
    assert.are.equal(4, #res.spans)
    assert.is_nil(res.cpu)
    local order = {}
    for i, s in ipairs(res.spans) do
      order[i] = s.arm
      assert.is_true(s.finish >= s.start)
    end
    local again = assert(timing.run({ validator = validator, direction = "min" }, arms("fast", "broken", "bare"), { seed = 3 }))
    for i, s in ipairs(again.spans) do
      assert.are.equal(order[i], s.arm)
    end
  end)

  it("fails the whole phase when the baseline's validator fails", function()
    local list = arms("fast")
    list[0].cand = { dir = dirs.broken }
    local res, err, spans = timing.run({ validator = validator, direction = "min" }, list, { seed = 1 })
    assert.is_nil(res)
    assert.are.equal("the baseline failed its benchmark: failed: broken", err)
    assert.are.equal(2, #spans)
  end)
end)

describe("the timing phase with measure", function()
  -- A validator whose measure answers from a table of plans per arm id:
  -- plan.centre gives figures around it; plan.fail_at = n fails the n-th
  -- call; plan.value is returned as is.
  local function measuring(plans)
    local calls = {}
    return {
      name = "planned",
      run = { "true" },
      measure = function(cand)
        local id = cand.id
        calls[id] = (calls[id] or 0) + 1
        local plan = plans[id]
        if plan.fail_at and calls[id] >= plan.fail_at then
          return nil, id .. " broke at run " .. calls[id], "EBENCH"
        end
        if plan.value ~= nil then
          return plan.value
        end
        if plan.slow_every and calls[id] % plan.slow_every == 0 then
          return 2 * figure(plan.centre, calls[id]) -- another process took half the core
        end
        return figure(plan.centre, calls[id])
      end,
    }, calls
  end
  local function arms(...)
    local list = { [0] = { id = "baseline", cand = { id = "baseline" } } }
    for i, id in ipairs { ... } do
      list[i] = { id = id, cand = { id = id } }
    end
    return list
  end
  local objective = function(v)
    return { validator = v, direction = "min", max_runs = 12, warmup = 1 }
  end

  it("says how spread the baseline's runs were", function()
    local quiet = assert(timing.run(objective(measuring { baseline = { centre = 2 }, fast = { centre = 1 } }),
      arms("fast"), { seed = 5 }))
    assert.is_true(quiet.noise >= 1 and quiet.noise < 1.05, tostring(quiet.noise))
    -- Every other run of the baseline slowed to twice its time: the median
    -- sits between the two clusters, the fastest tenth in the lower one.
    local loaded = assert(timing.run(objective(measuring { baseline = { centre = 2, slow_every = 2 },
      fast = { centre = 1 } }), arms("fast"), { seed = 5 }))
    assert.is_true(loaded.noise >= timing.NOISY, tostring(loaded.noise))
  end)

  it("drops a candidate whose metric is not a positive number, and one that fails at its first run", function()
    local v = measuring { baseline = { centre = 2 }, fast = { centre = 1 }, zero = { value = 0 },
      text = { value = "12ms" }, dead = { fail_at = 1 } }
    local res = assert(timing.run(objective(v), arms("fast", "zero", "text", "dead"), { seed = 5 }))
    assert.are.equal("faster", res.results[1].verdict)
    assert.are.equal("the metric gave 0, not a positive number", res.results[2].failed)
    assert.are.equal("the metric gave 12ms, not a positive number", res.results[3].failed)
    assert.are.equal("dead broke at run 1", res.results[4].failed)
  end)

  it("takes out a candidate that fails midway and times the others again on rounds without it", function()
    local v, calls = measuring { baseline = { centre = 2 }, fast = { centre = 1 }, flaky = { centre = 1.5, fail_at = 4 } }
    local res = assert(timing.run(objective(v), arms("fast", "flaky"), { seed = 7 }))
    assert.are.equal("flaky broke at run 4", res.results[2].failed)
    assert.are.equal("faster", res.results[1].verdict)
    assert.are.equal(4, calls.flaky)
    -- the second attempt timed the baseline again beside "fast" alone
    assert.is_true(res.results[1].runs >= 1)
    assert.is_true(calls.baseline > res.results[1].runs)
  end)

  it("times the baseline alone when every candidate is out at its first run", function()
    local v = measuring { baseline = { centre = 2 }, dead = { fail_at = 1 }, neg = { value = -1 } }
    local res = assert(timing.run(objective(v), arms("dead", "neg"), { seed = 2 }))
    assert.are.equal(6, res.rounds)
    assert.are.equal(6, res.baseline.n)
    assert.is_true(math.abs(res.baseline.median - 2) < 0.05)
    assert.are.equal("dead broke at run 1", res.results[1].failed)
    assert.are.equal("the metric gave -1, not a positive number", res.results[2].failed)
  end)

  it("fails the phase when the baseline's benchmark fails, first or midway", function()
    for _, fail_at in ipairs { 1, 4 } do
      local v = measuring { baseline = { centre = 2, fail_at = fail_at }, fast = { centre = 1 } }
      local res, err, spans = timing.run(objective(v), arms("fast"), { seed = 1 })
      assert.is_nil(res)
      assert.are.equal("the baseline failed its benchmark: baseline broke at run " .. fail_at, err)
      assert.is_true(#spans >= fail_at)
    end
  end)
end)

describe("timing.noise", function()
  it("is the median beside the fastest tenth, or the best tenth beside the median for scores", function()
    local runs = { 1, 1, 1, 1, 1, 2, 2, 2, 2, 2 }
    assert.are.equal(1.5, timing.noise(runs))
    assert.are.equal(2 / 1.5, timing.noise(runs, true))
    assert.are.equal(1, timing.noise { 3, 3, 3, 3, 3, 3 })
    -- Seven runs: the median is the fourth, the fastest tenth the first.
    assert.are.equal(4, timing.noise { 7, 1, 4, 4, 9, 8, 3 })
    assert.is_nil(timing.noise { 1, 2, 3, 4, 5 })
  end)

  it("puts a note on the cycle line only above timing.NOISY", function()
    local record = require "poengine.optimizer.record"
    assert.are.equal("", record.noise_note(nil))
    assert.are.equal("", record.noise_note(timing.NOISY - 0.01))
    assert.matches("^; timing noisy: the baseline's median run took 1%.70x its fastest tenth", record.noise_note(1.7))
  end)
end)
