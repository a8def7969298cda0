-- An error raised by an on_settle callback while the reactor delivers
-- results: it surfaces from the wait that ran the reactor, and results
-- delivered in the same turn still settle their futures.
local po = require "poengine"

describe("an on_settle callback that raises", function()
  it("raises from the wait, and the future keeps its results", function()
    local f = po.pool.submit(function() return 1 end)
    f:on_settle(function() error("broken callback") end)
    local ok, err = pcall(function() return f:wait() end)
    assert.is_false(ok)
    assert.matches("broken callback", err, 1, true)
    assert.are.equal(1, f:wait())
  end)

  it("still runs the callbacks after it, and wakes a task waiting on the same future", function()
    local f = po.future()
    local ran, woke = {}, nil
    f:on_settle(function() ran[#ran + 1] = "before" end)
    f:on_settle(function() error("broken callback", 0) end)
    f:on_settle(function() ran[#ran + 1] = "after" end)
    f:on_settle(function() error("also broken", 0) end)
    local waiter = po.async(function()
      woke = f:wait()
      return woke
    end)
    local ok, err = pcall(f.resolve, f, 7)
    assert.is_false(ok)
    assert.are.equal("broken callback\n(and 1 more on_settle callback of this future raised)", err)
    assert.are.same({ "before", "after" }, ran)
    assert.are.equal(7, waiter:wait(5))
    assert.are.equal(7, woke)
  end)

  it("raises the first error of a turn; the other results still arrive", function()
    po.pool.configure { workers = 1 } -- one worker: g finishes before h
    local release = os.tmpname()
    local function wait_for(path)
      local limit = os.time() + 30
      while not io.open(path) and os.time() < limit do end
      return 1
    end
    os.remove(release)
    local g = po.pool.submit(wait_for, release)
    local h = po.pool.submit(function() return 2 end)
    g:on_settle(function() error("first") end)
    h:on_settle(function() error("second") end)
    io.open(release, "w"):close()
    repeat -- both finished, neither delivered: the reactor has not run
      local stats = po.pool.stats()
    until stats.running == 0 and stats.queued == 0
    local ok, err = pcall(function() return po.all({ g, h }) end)
    os.remove(release)
    assert.is_false(ok)
    assert.matches("first", err, 1, true)
    assert.are.equal(1, g:wait())
    assert.are.equal(2, h:wait())
    po.pool.configure { workers = po.pool.cpu_count() }
  end)
end)
