-- The scheduler's edges: a future's text, po.after's argument check,
-- cancel hooks forgotten or failing, a script that exits with tasks that
-- can never finish (each reported on stderr by a real poengine process),
-- and the timer heap dropping stopped timers.
local po = require "poengine"
local proc = require "tests.tools.proc"
local timers = require "poengine.timers"
local future = require "poengine.future"

-- Runs a script in a poengine process: status, stdout, stderr.
local function script(text)
  local path = proc.tempfile(text, ".lua")
  local status, out, err = proc.poengine(proc.quote(path))
  os.remove(path)
  return status, out, err
end

describe("po's futures", function()
  it("name their state", function()
    local fut = po.future()
    assert.are.equal("poengine.future (pending)", tostring(fut))
    fut:resolve(1)
    assert.are.equal("poengine.future (done)", tostring(fut))
  end)

  it("po.after refuses a negative or NaN delay, naming seconds", function()
    assert.has_error(function() po.after(-1) end, "po.after: seconds must be a non-negative number, got -1")
    assert.has_error(function() po.after(0 / 0) end)
    local ok, err = pcall(po.after, "1")
    assert.is_false(ok)
    assert.matches("po.after: seconds must be a non-negative number, got 1", err, 1, true)
  end)

  it("a cancel hook given without an argument is forgotten by off_cancel without one", function()
    assert.is_false(future.on_cancel(print)) -- outside a task nothing can cancel the caller
    local ran = {}
    local function hook(arg) ran[#ran + 1] = arg == nil and "nil" or arg end
    local fut = po.async(function()
      future.on_cancel(hook)
      future.off_cancel(hook)
      future.on_cancel(hook, "kept")
      po.sleep(30)
    end)
    assert.is_true(fut:cancel())
    assert.are.same({ "kept" }, ran)
    assert.are.same({ nil, "canceled", "ECANCELED" }, { fut:wait() })
  end)
end)

describe("a poengine script", function()
  it("reports a cancel hook that fails on stderr, and the cancel still completes", function()
    local status, out, err = script [[
      local po = require "poengine"
      local fut = po.async(function()
        require("poengine.future").on_cancel(function() error("the hook broke") end)
        po.sleep(30)
      end)
      fut:cancel()
      print(select(3, fut:wait()))
    ]]
    assert.are.same({ 0, "ECANCELED\n" }, { status, out })
    assert.matches("poengine: an on_cancel hook failed: [^\n]*the hook broke", err)
  end)

  it("that ends with tasks waiting on futures nothing can settle says how many, on stderr", function()
    local status, out, err = script [[
      local po = require "poengine"
      local never = po.future()
      po.async(function() never:wait() end)
      po.async(function() never:wait() end)
      print("done")
    ]]
    assert.are.same({ 0, "done\n" }, { status, out })
    assert.truthy(err:find("poengine: 2 po.async task(s) still waiting at exit on futures that can never settle\n", 1,
      true), err)
  end)
end)

describe("the timer heap", function()
  it("is rebuilt without its stopped timers once they are most of it", function()
    local list = {}
    for i = 1, 100 do
      list[i] = timers.start(3600 + i, function() end)
    end
    local rebuilt
    for i = 1, 100 do
      local _, heap_before = timers.counts()
      timers.stop(list[i])
      local live, heap = timers.counts()
      if heap < heap_before then
        rebuilt = { i = i, live = live, heap = heap, before = heap_before }
        break
      end
    end
    assert.is_table(rebuilt, "the heap was never rebuilt")
    -- rebuilt at the first stop that left fewer than a quarter live, keeping exactly those
    assert.are.equal(rebuilt.live, rebuilt.heap)
    assert.is_true(rebuilt.live < rebuilt.before / 4 and rebuilt.live + 1 >= rebuilt.before / 4)
    assert.are.equal(list[rebuilt.i + 1].deadline, timers.next_deadline())
    for i = rebuilt.i + 1, 100 do
      timers.stop(list[i])
    end
  end)

  it("drops a stopped timer from its top for the next deadline, and runs none that is not due", function()
    local fired = 0
    local first = timers.start(1000, function() fired = fired + 1 end)
    local second = timers.start(2000, function() fired = fired + 1 end)
    timers.stop(first)
    assert.are.equal(second.deadline, timers.next_deadline())
    assert.are.equal(0, timers.run_due())
    assert.are.equal(0, fired)
    timers.stop(second)
  end)
end)
