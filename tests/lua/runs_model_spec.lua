-- The run model (poengine.runs.model): what a run's event log says, read
-- back exactly — parents, the accepted chain, per-cycle outcomes, the best
-- over the original and where it comes from, the status of the process
-- that writes it, and the event log read from an offset, complete lines
-- only.
local po = require "poengine"
local proc = require "tests.tools.proc"
local model = require "poengine.runs.model"
local record = require "poengine.optimizer.record"

local function write_log(dir, events, tail)
  local lines = {}
  for i, ev in ipairs(events) do
    lines[i] = po.json.encode(ev, { sort_keys = true })
  end
  assert(po.write_file(dir .. "/events.jsonl", table.concat(lines, "\n") .. "\n" .. (tail or "")))
end

local function cand(cycle, id, fields)
  local ev = { kind = "candidate", cycle = cycle, candidate = id, time = "2026-12-01T10:00:0" .. cycle .. "Z" }
  for k, v in pairs(fields or {}) do
    ev[k] = v
  end
  return ev
end

describe("poengine.runs.model", function()
  local dir
  before_each(function() dir = proc.tempdir() .. "/run-x" end)
  after_each(function() proc.rmdir(dir:match("^(.*)/")) end)

  it("reads candidates, parents, the chain and outcomes from a log", function()
    assert(os.execute("mkdir -p " .. dir) == 0)
    write_log(dir, {
      { kind = "start", pid = 1, process_start = 1, method = "search", direction = "max", time = "2026-12-01T10:00:00Z",
        started = 1764583200.5 },
      cand(1, "c1.1", { parent = "original", params = { n = 2 }, verdict = "faster", speedup = 1.5, ci_low = 1.4,
        ci_high = 1.6, accepted = true, cost = { usd = 0.01, tokens = 100 } }),
      cand(1, "c1.2", { parent = "original", malformed = "no code block" }),
      cand(1, "c1.3", { parent = "original", stage = "tests", results = { { name = "tests", status = "failed" } } }),
      { kind = "cycle", cycle = 1, parent = "original", accepted = "c1.1", best_score = 15, original_score = 10,
        spent = { usd = 0.01, tokens = 100 }, time = "2026-12-01T10:00:01Z" },
      cand(2, "c2.1", { parent = "c1.1", verdict = "slower", speedup = 0.7 }),
      cand(2, "c2.2", { parent = "c1.1", verdict = "same", speedup = 1.0 }),
      cand(2, "c2.3", { parent = "c1.1", stage = "build" }),
      { kind = "cycle", cycle = 2, parent = "c1.1", best_score = 15, original_score = 10,
        spent = { usd = 0.03, tokens = 300 }, time = "2026-12-01T10:00:02Z" },
    })
    local m = assert(model.load(dir))
    assert.are.equal("run-x", m.id)
    assert.are.equal("max", m.direction)
    assert.are.equal("search", m.method)
    assert.are.equal(2, m.cycles)
    assert.are.equal("stopped", m.status) -- pid 1 is not this run's writer
    assert.are.same({ "original", "c1.1" }, m.chain)
    assert.are.same({ "original", "original", "original", "c1.1", "c1.1", "c1.1" },
      (function() local t = {} for i, c in ipairs(m.candidates) do t[i] = c.parent end return t end)())
    assert.are.same({ cycle = 1, proposed = 3, unusable = 1, failed = { tests = 1 }, slower = 0, same = 0, faster = 1 },
      m.cycle_outcomes[1])
    assert.are.same({ cycle = 2, proposed = 3, unusable = 0, failed = { build = 1 }, slower = 1, same = 1, faster = 0 },
      m.cycle_outcomes[2])
    assert.are.equal("n=2", m.candidates[1].change)
    assert.are.same({ usd = 0.01, tokens = 100 }, m.candidates[1].cost)
    assert.are.same({ usd = 0.03, tokens = 300 }, m.cost)
    -- max direction: 15 over 10 is 1.5x, from the cycles' scores, no interval
    assert.are.same({ speedup = 1.5, source = "cycle scores" }, m.best)
    assert.are.equal(1764583200.5, m.started)
    assert.are.equal(1796119202, m.updated) -- date -u -d 2026-12-01T10:00:02Z +%s
    -- UTC arithmetic, whatever the reader's zone and its daylight saving
    assert.are.equal(951782400, model.epoch("2000-02-29T00:00:00Z"))
    assert.are.equal(0, model.epoch("1970-01-01T00:00:00Z"))
    assert.are.equal(4107542399, model.epoch("2100-02-28T23:59:59Z"))
  end)

  it("shows the cycle in progress: candidates validated so far, pending until their cycle is recorded", function()
    assert(os.execute("mkdir -p " .. dir) == 0)
    local events = {
      { kind = "start", pid = 1, direction = "min" },
      cand(1, "c1.1", { parent = "original", verdict = "faster", speedup = 2, accepted = true }),
      { kind = "cycle", cycle = 1, accepted = "c1.1", best_score = 1, original_score = 2 },
      { kind = "validated", cycle = 2, candidate = "c2.2", parent = "c1.1", passed = true, params = { n = 3 },
        results = { { name = "tests", status = "ok", passed = true } } },
      { kind = "validated", cycle = 2, candidate = "c2.1", parent = "c1.1", passed = false, stage = "tests",
        results = { { name = "tests", status = "failed", passed = false } } },
    }
    write_log(dir, events)
    local m = assert(model.load(dir))
    assert.are.equal(3, #m.candidates)
    local p1, p2 = m.candidates[2], m.candidates[3]
    assert.are.same({ "c2.2", true, true, "c1.1", "n=3" }, { p1.id, p1.pending, p1.passed, p1.parent, p1.change })
    assert.is_nil(p1.stage)
    assert.are.same({ "c2.1", true, false, "tests" }, { p2.id, p2.pending, p2.passed, p2.stage })
    assert.are.equal(1, #m.cycle_outcomes) -- counted once their cycle is recorded
    local judge = require "poengine.dashboard.judge"
    assert.are.same({ "pending", "validated", "to be timed" },
      { judge.outcome(p1), judge.stage(p1), judge.verdict(p1) })
    assert.are.equal("failed at tests", judge.verdict(p2))
    -- the cycle recorded: the same candidates, no longer pending
    events[#events + 1] = cand(2, "c2.1", { parent = "c1.1", stage = "tests" })
    events[#events + 1] = cand(2, "c2.2", { parent = "c1.1", verdict = "same", speedup = 1 })
    write_log(dir, events)
    m = assert(model.load(dir))
    assert.are.equal(3, #m.candidates)
    for _, c in ipairs(m.candidates) do
      assert.is_nil(c.pending)
    end
    assert.are.equal(2, #m.cycle_outcomes)
    -- a run resumed after its process died runs the cycle again: what the
    -- dead one validated is forgotten
    write_log(dir, { events[1], events[2], events[3], events[4], { kind = "start", pid = 1 } })
    assert.are.equal(1, #assert(model.load(dir)).candidates)
  end)

  it("takes the best from the final check once the run has ended, and says it finished", function()
    assert(os.execute("mkdir -p " .. dir) == 0)
    write_log(dir, {
      { kind = "start", pid = 1, direction = "min" },
      cand(1, "c1.1", { verdict = "faster", speedup = 2, accepted = true }),
      { kind = "end", stopped = "cycles", original_score = 4, best_score = 2, spent = { usd = 0, tokens = 0 },
        final = { verdict = "faster", speedup = 1.9, ci_low = 1.8, ci_high = 2.05, runs = 9 } },
    })
    local m = assert(model.load(dir))
    assert.are.equal("finished", m.status)
    assert.are.same({ speedup = 1.9, ci_low = 1.8, ci_high = 2.05, verdict = "faster", source = "final check" }, m.best)
    -- a log from before parent fields: the previous accepted one is the parent
    assert.are.equal("original", m.candidates[1].parent)
  end)

  it("says running while the process that started the run is alive, and only that process", function()
    assert(os.execute("mkdir -p " .. dir) == 0)
    local me = record.start_event { task = { method = "search", objective = { direction = "min" }, budget = {} } }
    assert.is_number(me.pid)
    assert.is_number(me.process_start)
    write_log(dir, { me })
    assert.are.equal("running", assert(model.load(dir)).status)
    -- the same pid with another start time is another process: pid reuse
    me.process_start = me.process_start + 1
    write_log(dir, { me })
    assert.are.equal("stopped", assert(model.load(dir)).status)
  end)

  it("makes one run of several workers' mirrored events: ids per worker, own lineages, summed cost", function()
    local function w(name, ev)
      ev.worker, ev.stream_id = name, "1-0"
      ev.time = ev.time or "2026-12-01T10:00:00Z"
      return ev
    end
    local events = {
      w("a", { kind = "start", pid = 1, direction = "min" }),
      w("b", { kind = "start", pid = 1, direction = "min" }),
      w("a", { kind = "validated", cycle = 1, candidate = "c1.1", parent = "original", passed = true }),
      w("b", { kind = "validated", cycle = 1, candidate = "c1.1", parent = "original", passed = true }),
      -- b restarts: its pending candidate is dropped, a's stays
      w("b", { kind = "start", pid = 2, direction = "min" }),
      w("b", { kind = "validated", cycle = 1, candidate = "c1.1", parent = "original", passed = false, stage = "tests" }),
      w("a", cand(1, "c1.1", { parent = "original", verdict = "faster", accepted = true })),
      w("a", { kind = "cycle", cycle = 1, best_score = 5, original_score = 10, spent = { usd = 0.5, tokens = 50 } }),
      w("b", cand(1, "c1.1", { parent = "original", verdict = "faster", accepted = true })),
      w("b", { kind = "validated", cycle = 2, candidate = "c2.1", parent = "c1.1", passed = true }),
      w("b", { kind = "cycle", cycle = 1, best_score = 4, original_score = 10, spent = { usd = 0.25, tokens = 20 } }),
      w("a", { kind = "end", best_score = 5, spent = { usd = 0.5, tokens = 50 } }),
    }
    local m = model.build(dir, events, nil)
    local ids = {}
    for i, c in ipairs(m.candidates) do
      ids[i] = c.id .. (c.pending and " (pending)" or "") .. " <- " .. c.parent
    end
    assert.are.same({ "a/c1.1 <- original", "b/c1.1 <- original", "b/c2.1 (pending) <- b/c1.1" }, ids)
    assert.are.same({ "original", "b/c1.1" }, m.chain) -- b's best (4) beats a's (5) when lower is better
    assert.are.equal(4, m.best_score)
    assert.are.same({ usd = 0.75, tokens = 70 }, m.cost)
    assert.are.equal("running", m.status) -- b has not ended
    assert.is_nil(m.process)
    assert.are.same({ "a", "finished", 1 }, { m.workers[1].name, m.workers[1].status, m.workers[1].candidates })
    assert.are.same({ "b", "running", 1 }, { m.workers[2].name, m.workers[2].status, m.workers[2].candidates })
    assert.are.equal(2, m.cycle_outcomes[1].proposed)
    events[#events + 1] = w("b", { kind = "end", best_score = 4 })
    assert.are.equal("finished", model.build(dir, events, nil).status)
    -- one worker: the ids as it wrote them
    local one = model.build(dir, { events[1], events[3], events[7], events[8] }, nil)
    assert.are.same({ "original", "c1.1" }, one.chain)
    assert.are.equal("running", one.status)
  end)

  it("reads events from an offset, complete lines only, with each event's end offset", function()
    assert(os.execute("mkdir -p " .. dir) == 0)
    write_log(dir, { { kind = "start" }, { kind = "cycle", cycle = 1 } }, '{"kind":"cand')
    local evs, offset, ends = model.events(dir)
    assert.are.equal(2, #evs)
    local first = #po.json.encode({ kind = "start" }) + 1
    assert.are.same({ first, offset }, ends)
    local again, offset2 = model.events(dir, ends[1])
    assert.are.same({ { kind = "cycle", cycle = 1 } }, again)
    assert.are.equal(offset, offset2)
    -- nothing new past the last complete line; the partial one waits
    local none, offset3 = model.events(dir, offset)
    assert.are.same({}, none)
    assert.are.equal(offset, offset3)
    -- an offset past the end (the log was started afresh) reads from 0
    assert.are.equal(2, #model.events(dir, offset + 1000))
  end)

  it("fails with ENOENT on a directory without an event log, and raises on a wrong argument", function()
    local m, err, code = model.load(dir)
    assert.is_nil(m)
    assert.are.equal("ENOENT", code)
    assert.truthy(err:find(dir, 1, true))
    assert.has_error(function() model.load(nil) end, "poengine.runs.model.load: dir must be a non-empty string")
  end)

  it("reads a real run the optimizer wrote, as its own result says", function()
    local home = proc.tempdir()
    local r = require("tests.tools.serve_home").run(home, "real", 2)
    local m = assert(model.load(home .. "/runs/real"))
    assert.are.equal("finished", m.status)
    assert.are.equal(r.cycles, m.cycles)
    assert.are.equal(#r.accepted + 1, #m.chain)
    for i, a in ipairs(r.accepted) do
      assert.are.equal(a.id, m.chain[i + 1])
    end
    assert.are.equal(r.baseline_score, m.original_score)
    assert.are.equal(r.best_score, m.best_score)
    if r.final then
      assert.are.equal(r.final.speedup, m.best.speedup)
    end
    for _, c in ipairs(m.candidates) do
      assert.are.equal(c.cycle == 1 and "original" or m.chain[2], c.parent)
      assert.is_true(#c.results > 0 or c.malformed ~= nil)
    end
    proc.rmdir(home)
  end)
end)
