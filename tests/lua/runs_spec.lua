-- The run catalogue (poengine.runs) on a home holding real optimizer runs:
-- one that accepted a candidate, one that accepted none, a directory that
-- is no run, a corrupt one and a link out of the home; listing, reading,
-- exporting and removing them, and a run still in progress.
local po = require "poengine"
local proc = require "tests.tools.proc"
local spin_runs = require "tests.tools.spin_runs"
local runs = require "poengine.runs"
local fmt = require "poengine.dashboard.fmt"

local function run_task(dir, home, opts)
  local task = assert(po.optimizer.load_task(spin_runs.task_file(dir, opts)))
  if opts.wrap then
    task.method = opts.wrap(task.method)
  end
  return po.optimizer.run(task, { output = home .. "/runs/" .. opts.id, quiet = true })
end

local function ids(list)
  local out = {}
  for i, s in ipairs(list) do
    out[i] = s.id
  end
  return out
end

local function exists(path)
  return os.execute("test -e " .. proc.quote(path)) == 0
end

describe("poengine.runs", function()
  local dir, home, outside, alpha, beta

  setup(function()
    dir = proc.tempdir()
    home = dir .. "/home"
    outside = dir .. "/outside"
    assert(os.execute("mkdir -p " .. proc.quote(home .. "/runs/empty") .. " " .. proc.quote(home .. "/runs/broken")
      .. " " .. proc.quote(outside) .. " && touch " .. proc.quote(outside .. "/keep")) == 0)
    -- An event log that is a directory.
    assert(os.execute("mkdir -p " .. proc.quote(home .. "/runs/weird/events.jsonl")) == 0)
    -- A run directory whose log is not JSON at all. Both are older than the
    -- runs; this one is newer (or as new, and first by name).
    local f = assert(io.open(home .. "/runs/broken/events.jsonl", "wb"))
    f:write("\0\1garbage\n{not json\n")
    f:close()
    -- A link to a run-like directory outside the home is not a run of it.
    assert(po.write_file(outside .. "/events.jsonl", '{"kind":"start","task":"outside"}\n'))
    assert(os.execute("ln -s " .. proc.quote(outside) .. " " .. proc.quote(home .. "/runs/link")) == 0)
    alpha = assert(run_task(dir, home, { id = "alpha", points = { 2000, 8000 } }))
    beta = assert(run_task(dir, home, { id = "beta", points = { 16000, 1 } }))
  end)

  teardown(function()
    proc.rmdir(dir)
  end)

  it("checks ids: one directory name, nothing that leaves <home>/runs", function()
    for _, bad in ipairs { "../x", "a/b", "..", ".", "", "/etc", "a\0b" } do
      local ok, err, code = runs.check_id(bad)
      assert.is_nil(ok, bad)
      assert.are.equal("EINVAL", code, bad)
      assert.is_string(err)
    end
    assert.are.equal("alpha", runs.check_id("alpha"))
    assert.are.equal("a..b", runs.check_id("a..b"))
    assert.has_error(function() runs.check_id(nil) end, "poengine.runs.check_id: id must be a string, got nil")
    for _, fn in ipairs { runs.get, runs.remove } do
      local ok, _, code = fn(home, "../x")
      assert.is_nil(ok)
      assert.are.equal("EINVAL", code)
      ok, _, code = fn(home, "a/b")
      assert.are.equal("EINVAL", code)
    end
  end)

  it("lists the runs newest first, the corrupt one as unreadable, without the others", function()
    local list = assert(runs.list(home))
    assert.are.same({ "beta", "alpha", "broken", "weird" }, ids(list))
    local b, a, broken, weird = list[1], list[2], list[3], list[4]

    assert.are.same({ id = "broken", dir = home .. "/runs/broken", status = "unreadable",
      reason = "its event log holds no readable event" }, broken)
    assert.are.same({ id = "weird", dir = home .. "/runs/weird", status = "unreadable",
      reason = "its event log is not a regular file" }, weird)

    assert.are.equal("alpha", a.task)
    assert.are.equal(home .. "/runs/alpha", a.dir)
    assert.are.equal("finished", a.status)
    assert.are.equal(1, a.cycles)
    assert.are.equal("min", a.direction)
    assert.are.same({ usd = 0, tokens = 0 }, a.cost)
    -- The best is the final check's verdict, with its interval.
    assert.are.equal("final check", a.best.source)
    assert.are.equal(alpha.final.speedup, a.best.speedup)
    assert.are.equal(alpha.final.ci_low, a.best.ci_low)
    assert.are.equal(alpha.final.ci_high, a.best.ci_high)
    assert.is_true(a.best.speedup > 1.5)
    assert.is_true(a.started <= a.updated)

    assert.are.equal("finished", b.status)
    assert.are.equal(1, b.cycles)
    assert.is_true(b.started > a.started)
    -- Nothing accepted: the best is the original, by the cycle's scores.
    assert.are.same({ speedup = 1, source = "cycle scores" }, b.best)
    assert.is_nil(beta.final)
  end)

  it("gives a run's model, and says why it cannot", function()
    local m = assert(runs.get(home, "alpha"))
    assert.are.same({ "original", "c1.1" }, m.chain)
    assert.are.equal(2, #m.candidates)
    assert.are.equal("rounds=2000", m.candidates[1].change)
    assert.are.equal("faster", m.candidates[1].verdict)
    assert.is_true(m.candidates[1].accepted)
    assert.are.equal("slower", m.candidates[2].verdict)

    local b = assert(runs.get(home, "beta"))
    assert.are.same({ "original" }, b.chain)
    assert.are.same({ { cycle = 1, proposed = 2, unusable = 0, failed = { check = 1 }, slower = 1, same = 0,
      faster = 0 } }, b.cycle_outcomes)

    local none, err, code = runs.get(home, "nope")
    assert.is_nil(none)
    assert.are.equal("ENOENT", code)
    assert.are.equal("no run 'nope' in " .. home .. "/runs", err)
    none, err, code = runs.get(home, "empty")
    assert.are.equal("ENOENT", code, err)
    none, err, code = runs.get(home, "link")
    assert.are.equal("ENOENT", code, err)
    none, err, code = runs.get(home, "weird")
    assert.are.equal("EIO", code)
    assert.are.equal("run 'weird' cannot be read: its event log is not a regular file", err)
    none, err, code = runs.get(home, "broken")
    assert.is_nil(none)
    assert.are.equal("EIO", code)
    assert.are.equal("run 'broken' cannot be read: its event log holds no readable event", err)
  end)

  it("exports a run as JSON that reads back as the model, and as CSV with a row per candidate", function()
    local m = assert(runs.get(home, "alpha"))
    local doc = assert(po.json.decode(runs.export(m, "json")))
    local want = assert(runs.get(home, "alpha"))
    want.started, want.updated = fmt.rfc3339(m.started), fmt.rfc3339(m.updated)
    assert.are.same(want, doc)

    local rows = spin_runs.parse_csv(runs.export(m, "csv"))
    assert.are.equal(3, #rows)
    local header = rows[1]
    assert.are.same(require("poengine.runs.export").columns, header)
    local col = {}
    for i, name in ipairs(header) do
      col[name] = i
    end
    for i, c in ipairs(m.candidates) do
      local row = rows[i + 1]
      assert.are.equal("alpha", row[col.run])
      assert.are.equal(c.id, row[col.id])
      assert.are.equal(c.cycle, tonumber(row[col.cycle]))
      assert.are.equal(c.change, row[col.change])
      assert.are.equal(c.verdict, row[col.verdict])
      assert.are.equal(c.speedup, tonumber(row[col.speedup]))
      assert.are.equal(c.ci_low, tonumber(row[col.ci_low]))
      assert.are.equal(tostring(c.accepted), row[col.accepted])
      assert.are.equal("original", row[col.parent])
    end
    -- A field holding a comma, a quote and a line break is quoted.
    m.candidates[1].change = 'a, "b"\nc'
    rows = spin_runs.parse_csv(runs.export(m, "csv"))
    assert.are.equal('a, "b"\nc', rows[2][col.change])
    assert.has_error(function() runs.export(m, "xml") end,
      "poengine.runs.export: format must be 'json' or 'csv', got xml")
  end)

  it("times two runs' bests against each other with a task file, and says why it cannot", function()
    local versus = require "poengine.runs.versus"
    local a, b = assert(runs.get(home, "alpha")), assert(runs.get(home, "beta"))
    -- beta's best is the original (4000 rounds); alpha's does 2000.
    local r = assert(versus.time(dir .. "/alpha.task.lua", a, b))
    assert.are.same({ "alpha", "beta", "slower", "min" }, { r.a, r.b, r.verdict, r.direction })
    assert.is_true(r.speedup < 0.6 and r.speedup > 0.4, tostring(r.speedup))
    assert.is_true(r.ci_low <= r.speedup and r.speedup <= r.ci_high)
    assert.is_true(r.a_median < r.b_median)

    local strict = spin_runs.task_file(dir, { id = "strict", points = {}, reject = 2000 })
    local none, err, code = versus.time(strict, a, b)
    assert.is_nil(none)
    assert.are.equal("EBENCH", code)
    assert.are.equal("the best of run 'alpha' fails the task's validators", err)

    none, err, code = versus.time(dir .. "/nope.lua", a, b)
    assert.are.equal("ETASK", code)
    assert.matches("nope.lua", err, 1, true)

    local empty = runs.model.build(dir .. "/no-run", {}, nil)
    none, err, code = versus.time(dir .. "/alpha.task.lua", a, empty)
    assert.are.equal("ENOENT", code)
    assert.are.equal("run 'no-run' has no checkpoint to rebuild its best from (it finished no cycle)", err)
    assert.is_false(exists(dir .. "/no-run"))
  end)

  it("refuses to remove a run in progress unless forced, and never follows a link out of the home", function()
    local reached, gate = po.future(), po.future()
    local running = po.async(run_task, dir, home, { id = "gamma", points = { 2000 }, wrap = function(method)
      return function(state)
        reached:resolve(true)
        gate:wait()
        return method(state)
      end
    end })
    finally(function() gate:resolve(true) end) -- (a failed assertion must not leave the run waiting)
    assert(reached:wait(60))
    local m = assert(runs.get(home, "gamma"))
    assert.are.equal("running", m.status)
    assert.are.equal("running", assert(runs.list(home))[1].status)
    local ok, err, code = runs.remove(home, "gamma")
    assert.is_nil(ok)
    assert.are.equal("EBUSY", code)
    assert.are.equal("run 'gamma' is running; stop it first, or force the removal", err)
    assert.is_true(exists(home .. "/runs/gamma/events.jsonl"))
    gate:resolve(true)
    assert(running:wait(120))
    assert.are.equal("finished", assert(runs.get(home, "gamma")).status)

    -- A link inside a run is removed with it; what it points to stays.
    assert(os.execute("ln -s " .. proc.quote(outside) .. " " .. proc.quote(home .. "/runs/gamma/escape")) == 0)
    assert.is_true(runs.remove(home, "gamma"))
    assert.is_false(exists(home .. "/runs/gamma"))
    assert.is_true(exists(outside .. "/keep"))
    assert.are.same({ "beta", "alpha", "broken", "weird" }, ids(assert(runs.list(home))))
    -- A link in <home>/runs is not a run: nothing is removed through it.
    ok, err, code = runs.remove(home, "link")
    assert.are.equal("ENOENT", code, err)
    assert.is_true(exists(outside .. "/keep"))
    ok, err, code = runs.remove(home, "gamma")
    assert.are.equal("ENOENT", code, err)
  end)

  it("removes a running run when forced", function()
    local reached, gate = po.future(), po.future()
    local running = po.async(run_task, dir, home, { id = "delta", points = { 2000 }, wrap = function(method)
      return function(state)
        reached:resolve(true)
        gate:wait()
        return method(state)
      end
    end })
    finally(function() gate:resolve(true) end) -- (a failed assertion must not leave the run waiting)
    assert(reached:wait(60))
    assert.are.equal("running", assert(runs.get(home, "delta")).status)
    assert.is_true(runs.remove(home, "delta", { force = true }))
    assert.is_false(exists(home .. "/runs/delta"))
    gate:resolve(true)
    running:wait(120) -- the run goes on without its directory; how it ends is not the point
    assert.are.same({ "beta", "alpha", "broken", "weird" }, ids(assert(runs.list(home))))
  end)

  it("words figures in the objective's direction", function()
    local text = require "poengine.runs.text"
    assert.are.equal("1.93x faster [1.88, 1.99]", text.speedup(1.93, 1.88, 1.99, "min"))
    assert.are.equal("1.93x higher [1.88, 1.99]", text.speedup(1.93, 1.88, 1.99, "max"))
    -- Worse than the original: the inverse, the interval's ends swapped.
    assert.are.equal("1.25x slower [1.11, 1.43]", text.speedup(0.8, 0.7, 0.9, "min"))
    assert.are.equal("2.00x lower", text.speedup(0.5, nil, nil, "max"))
    assert.are.equal("1.00x (the same)", text.speedup(1, nil, nil, "min"))
    assert.are.equal("–", text.speedup(nil))
    assert.are.equal("$0.0123, 4,340 tokens", text.cost { usd = 0.0123, tokens = 4340 })
    assert.are.equal("$12.35, 0 tokens", text.cost { usd = 12.345, tokens = 0 })
  end)

  it("has an empty list for a home without runs", function()
    assert.are.same({}, assert(runs.list(dir .. "/no-such-home")))
  end)
end)
