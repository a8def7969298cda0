-- The event loop and futures: po.now, po.time, po.sleep, po.async, po.after,
-- po.future, po.all, po.any, fut:wait/done/cancel.
local po = require "poengine"
local proc = require "tests.tools.proc"

describe("clocks", function()
  it("po.now is monotonic seconds and po.time is Unix seconds", function()
    local a = po.now()
    local b = po.now()
    assert.is_number(a)
    assert.is_true(b >= a)
    assert.is_true(math.abs(po.time() - os.time()) < 2)
  end)

  it("po.time has sub-second resolution", function()
    -- five readings 20 ms apart: whole seconds would give at most two values
    local seen, distinct, fractional = {}, 0, false
    for _ = 1, 5 do
      local t = po.time()
      if not seen[t] then seen[t], distinct = true, distinct + 1 end
      if t ~= math.floor(t) then fractional = true end
      po.sleep(0.02)
    end
    assert.is_true(distinct >= 4)
    assert.is_true(fractional)
  end)
end)

describe("po.sleep", function()
  it("blocks for at least the given time outside a task", function()
    local t0 = po.now()
    po.sleep(0.05)
    assert.is_true(po.now() - t0 >= 0.05)
  end)

  it("rejects a negative or non-number duration, naming the function", function()
    assert.has_error(function() po.sleep(-1) end, "po.sleep: seconds must be a non-negative number, got -1")
    assert.has_error(function() po.sleep("x") end, "po.sleep: seconds must be a non-negative number, got x")
  end)
end)

describe("po.async", function()
  it("returns a future of the function's results, all of them", function()
    local f = po.async(function(a, b) return a + b, "second", nil end, 2, 3)
    local x, y = f:wait()
    assert.are.equal(5, x)
    assert.are.equal("second", y)
    assert.is_true(f:done())
  end)

  it("keeps a nil, message, code return as it is", function()
    local f = po.async(function() return nil, "no luck", "ENOPE" end)
    local v, msg, code = f:wait()
    assert.is_nil(v)
    assert.are.equal("no luck", msg)
    assert.are.equal("ENOPE", code)
  end)

  it("turns an error inside into the future's error with its traceback", function()
    local f = po.async(function()
      po.sleep(0.001)
      error("kaboom")
    end)
    local v, msg, code = f:wait()
    assert.is_nil(v)
    assert.are.equal("ERUNTIME", code)
    assert.matches("kaboom", msg)
    assert.matches("stack traceback:", msg)
    assert.matches("async_spec.lua", msg)
    assert.not_matches("future.lua", msg) -- the scheduler's own frames are trimmed
  end)

  it("keeps a non-string error value as it is", function()
    local obj = { reason = "table error" }
    local f = po.async(function() error(obj) end)
    local v, err, code = f:wait()
    assert.is_nil(v)
    assert.are.equal(obj, err)
    assert.are.equal("ERUNTIME", code)
  end)

  it("runs 1,000 sleeping tasks at once, not one after another", function()
    local started, finished = 0, 0
    local futures = {}
    local t0 = po.now()
    for i = 1, 1000 do
      futures[i] = po.async(function()
        started = started + 1
        po.sleep(0.05)
        finished = finished + 1
        return i
      end)
    end
    assert.are.equal(1000, started) -- each started before any finished
    assert.are.equal(0, finished)
    local results = assert(po.all(futures))
    local elapsed = po.now() - t0
    assert.are.equal(1000, finished)
    for i = 1, 1000 do
      assert.are.equal(i, results[i])
    end
    -- One after another would take 50 s; overlapped they take about 0.05 s.
    assert.is_true(elapsed < 5, "1,000 sleeps of 0.05 s took " .. elapsed .. " s")
  end)

  it("lets tasks start and wait on other tasks", function()
    local f = po.async(function()
      local inner = po.async(function()
        po.sleep(0.01)
        return "inner"
      end)
      return "outer+" .. inner:wait()
    end)
    assert.are.equal("outer+inner", f:wait())
  end)

  it("treats a plain coroutine.yield inside a task as giving way", function()
    local steps = {}
    local a = po.async(function()
      steps[#steps + 1] = "a1"
      coroutine.yield()
      steps[#steps + 1] = "a2"
    end)
    local b = po.async(function()
      steps[#steps + 1] = "b1"
    end)
    po.all { a, b }
    assert.are.same({ "a1", "b1", "a2" }, steps)
  end)

  it("raises when fn is not a function", function()
    assert.has_error(function() po.async(42) end, "po.async: fn must be a function, got number")
  end)

  it("lets finished and canceled tasks and their results be collected", function()
    -- 300 tasks each returning 100 KB kept about 30 MB reachable for good
    -- when the scheduler's task index held them.
    local function heap_kb()
      collectgarbage()
      collectgarbage()
      return collectgarbage("count")
    end
    local before = heap_kb()
    for i = 1, 300 do
      local big = po.async(function(n) return string.rep("x", 100000) .. n end, i)
      local waited = po.async(function(n)
        po.sleep(0)
        return string.rep("y", 100000) .. n
      end, i)
      local canceled = po.async(function() return po.future():wait() end)
      assert.are.equal(100000 + #tostring(i), #big:wait())
      assert.are.equal(100000 + #tostring(i), #waited:wait())
      canceled:cancel()
    end
    local grown = heap_kb() - before
    assert.is_true(grown < 3000, ("the Lua heap grew by %d KB"):format(grown))
  end)
end)

describe("fut:wait with a timeout", function()
  it("returns nil, message, ETIMEDOUT and the work goes on", function()
    local finished = false
    local f = po.async(function()
      po.sleep(0.1)
      finished = true
      return "late"
    end)
    local v, msg, code = f:wait(0.01)
    assert.is_nil(v)
    assert.are.equal("ETIMEDOUT", code)
    assert.matches("timed out", msg)
    assert.is_false(f:done())
    assert.are.equal("late", f:wait())
    assert.is_true(finished)
  end)

  it("times out inside a task too, and the task carries on", function()
    local f = po.async(function()
      local slow = po.after(1)
      local v, _, code = slow:wait(0.01)
      slow:cancel()
      return v, code
    end)
    local v, code = f:wait()
    assert.is_nil(v)
    assert.are.equal("ETIMEDOUT", code)
  end)

  it("returns at once for a settled future, whatever the timeout", function()
    local f = po.async(function() return 1 end)
    assert.are.equal(1, f:wait(0))
  end)

  it("rejects a bad timeout", function()
    local f = po.after(0)
    assert.has_error(function() f:wait(-1) end, "fut:wait: timeout must be a non-negative number of seconds, got -1")
    assert.has_error(function() f.wait(1) end)
  end)
end)

describe("timers", function()
  it("do not pile up when long timeouts are stopped early", function()
    local future = require "poengine.future"
    for _ = 1, 5000 do
      local f = po.future()
      local t = po.async(function() return f:wait(600) end)
      f:resolve(1)
      assert.are.equal(1, t:wait())
    end
    local counts = future._counts()
    assert.are.equal(0, counts.timers)
    assert.is_true(counts.heap < 1000, "heap holds " .. counts.heap .. " stopped timers")
  end)
end)

describe("fut:cancel", function()
  it("stops a waiting task for good and fails its future with ECANCELED", function()
    local resumed = false
    local f = po.async(function()
      po.sleep(0.05)
      resumed = true
    end)
    assert.is_true(f:cancel())
    assert.is_true(f:done())
    local v, _, code = f:wait()
    assert.is_nil(v)
    assert.are.equal("ECANCELED", code)
    po.sleep(0.1)
    assert.is_false(resumed)
    assert.is_false(f:cancel())
  end)

  it("wakes the tasks waiting on the canceled future", function()
    local timer = po.after(10)
    local waiter = po.async(function() return timer:wait() end)
    timer:cancel()
    local v, _, code = waiter:wait(1)
    assert.is_nil(v)
    assert.are.equal("ECANCELED", code)
  end)

  it("returns false on a settled future", function()
    local f = po.async(function() return true end)
    f:wait()
    assert.is_false(f:cancel())
    assert.is_true(f:wait())
  end)
end)

describe("fut:on_settle and fut:outcome", function()
  it("call back once the future settles, with what wait would return", function()
    local f = po.future()
    local seen = {}
    f:on_settle(function(g) seen[#seen + 1] = { g == f, g:outcome() } end)
    assert.are.equal(0, #seen)
    f:resolve("a", nil, "c")
    assert.are.same({ { true, "a", nil, "c" } }, seen)
    f:on_settle(function(g) seen[#seen + 1] = { g:outcome() } end) -- already settled: at once
    assert.are.same({ "a", nil, "c" }, seen[2])
  end)

  it("give nil, message, code for a failed future", function()
    local f = po.future()
    f:reject("broken", "EBROKEN")
    assert.are.same({ nil, "broken", "EBROKEN" }, { f:outcome() })
  end)

  it("outcome raises on a pending future", function()
    assert.has_error(function() po.future():outcome() end, "fut:outcome: the future is still pending")
  end)
end)

describe("po.future", function()
  it("is settled by whoever holds it", function()
    local f = po.future()
    assert.is_true(po.is_future(f))
    assert.is_false(f:done())
    po.async(function()
      po.sleep(0.01)
      f:resolve("a", "b")
    end)
    local a, b = f:wait(1)
    assert.are.equal("a", a)
    assert.are.equal("b", b)
    assert.is_false(f:resolve("again")) -- settles once
    assert.are.equal("a", (f:wait()))
  end)

  it("can be rejected with a message and code", function()
    local f = po.future()
    f:reject("broken", "EBROKEN")
    local v, msg, code = f:wait()
    assert.is_nil(v)
    assert.are.equal("broken", msg)
    assert.are.equal("EBROKEN", code)
  end)

  it("reports a wait that could never end instead of hanging", function()
    local f = po.future()
    local v, msg, code = f:wait()
    assert.is_nil(v)
    assert.are.equal("EDEADLK", code)
    assert.matches("never settle", msg)
  end)
end)

describe("po.all", function()
  it("returns results in input order even when later ones finish first", function()
    local order = {}
    local futures = {}
    for i, delay in ipairs { 0.06, 0.04, 0.02, 0 } do
      futures[i] = po.async(function()
        po.sleep(delay)
        order[#order + 1] = i
        return "r" .. i
      end)
    end
    local results = assert(po.all(futures))
    assert.are.same({ 4, 3, 2, 1 }, order)
    assert.are.same({ "r1", "r2", "r3", "r4" }, { results[1], results[2], results[3], results[4] })
    assert.are.equal(4, results.n)
  end)

  it("fails as soon as one future fails, naming which", function()
    local futures = {
      po.after(5),
      po.async(function()
        po.sleep(0.01)
        error("second broke")
      end),
    }
    local t0 = po.now()
    local v, msg, code = po.all(futures)
    assert.is_true(po.now() - t0 < 4)
    assert.is_nil(v)
    assert.matches("^future 2 failed: .*second broke", msg)
    assert.are.equal("ERUNTIME", code)
    futures[1]:cancel()
  end)

  it("times out", function()
    local slow = po.after(5)
    local v, _, code = po.all({ slow }, 0.01)
    assert.is_nil(v)
    assert.are.equal("ETIMEDOUT", code)
    slow:cancel()
  end)

  it("returns an empty result for no futures", function()
    local results = po.all {}
    assert.are.equal(0, results.n)
  end)

  it("rejects what is not a list of futures", function()
    assert.has_error(function() po.all(5) end, "po.all: futures must be a table of futures, got number")
    assert.has_error(function() po.all { po.after(0), 7 } end, "po.all: futures[2] is a number, not a future")
  end)
end)

describe("po.any", function()
  it("returns the index and results of the first to finish", function()
    local slow = po.after(5)
    local i, v = po.any { slow, po.async(function()
      po.sleep(0.01)
      return "quick"
    end) }
    assert.are.equal(2, i)
    assert.are.equal("quick", v)
    slow:cancel()
  end)

  it("reports a first finisher that failed as index, nil, message, code", function()
    local slow = po.after(5)
    local i, v, msg, code = po.any { slow, po.async(function() error("fell over") end) }
    assert.are.equal(2, i)
    assert.is_nil(v)
    assert.matches("fell over", msg)
    assert.are.equal("ERUNTIME", code)
    slow:cancel()
  end)

  it("times out", function()
    local slow = po.after(5)
    local i, _, code = po.any({ slow }, 0.01)
    assert.is_nil(i)
    assert.are.equal("ETIMEDOUT", code)
    slow:cancel()
  end)

  it("rejects an empty list", function()
    assert.has_error(function() po.any {} end, "po.any: futures must not be empty")
  end)
end)

describe("the end of a script", function()
  it("runs pending tasks to completion before the process exits", function()
    local script = proc.tempfile([[
      po.async(function() po.sleep(0.05) io.write("task finished\n") end)
      io.write("script returned\n")
    ]], ".lua")
    local status, out, err = proc.poengine(proc.quote(script))
    os.remove(script)
    assert.are.equal(0, status, err)
    assert.are.equal("script returned\ntask finished\n", out)
  end)

  it("reports the error of a task nobody waited for", function()
    local script = proc.tempfile([[po.async(function() po.sleep(0.01) error("lost error") end)]], ".lua")
    local status, _, err = proc.poengine(proc.quote(script))
    os.remove(script)
    assert.are.equal(0, status)
    assert.matches("a po.async task failed and nobody waited for it: .*lost error", err)
  end)
end)
