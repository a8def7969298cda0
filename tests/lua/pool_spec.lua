-- The worker pool: po.pool.submit, configure, shutdown, stats.
local po = require "poengine"

local function exists(path)
  local f = io.open(path)
  if f then
    f:close()
  end
  return f ~= nil
end

describe("po.pool", function()
  it("runs a function on a worker and returns a future of all its results", function()
    local fut = po.pool.submit(function(a, b, c) return a + b, c, nil, "last" end, 2, 3, { k = "v" })
    assert.is_true(po.is_future(fut))
    local sum, c, none, last = fut:wait()
    assert.are.equal(5, sum)
    assert.are.same({ k = "v" }, c)
    assert.is_nil(none)
    assert.are.equal("last", last)
  end)

  it("copies nil, booleans, numbers, strings and nested tables both ways", function()
    local value = {
      1, 2.5, -0.125, "s\0with zero", true, false,
      nested = { deeper = { list = { "a", "b" } }, [7] = "seven", [true] = "yes" },
      huge = math.huge,
    }
    local shared = { "shared" }
    local echoed, a, b, n = po.pool.submit(function(v, x, y, z) return v, x, y, z end, value, shared, shared, nil):wait()
    assert.are.same(value, echoed)
    assert.are.same({ "shared" }, a)
    assert.are.same({ "shared" }, b)
    assert.is_nil(n)
  end)

  it("rebinds upvalues that are modules or their functions, and copies plain ones", function()
    local fmt = string.format
    local json = po.json
    local settings = { scale = 10 }
    local fut = po.pool.submit(function(x)
      settings.scale = settings.scale + 1 -- changes the worker's copy only
      return fmt("%d", x * settings.scale), json.encode { 1 }, po.pool.in_worker()
    end, 4)
    local text, encoded, in_worker = fut:wait()
    assert.are.equal("44", text)
    assert.are.equal("[1]", encoded)
    assert.is_true(in_worker)
    assert.are.equal(10, settings.scale)
  end)

  it("runs { module =, fn = } functions, which may have upvalues", function()
    local r = po.pool.submit({ module = "poengine.proc", fn = "run_sync" }, { argv = { "echo", "from a worker" } }):wait()
    assert.are.equal("from a worker\n", r.stdout)
    local _, err, code = po.pool.submit({ module = "poengine.proc", fn = "nope" }):wait()
    assert.are.equal("ERUNTIME", code)
    assert.matches("po.pool: poengine.proc.nope is a nil, not a function", err, 1, true)
  end)

  it("turns an error in the worker into the future's error with the worker's traceback", function()
    local _, err, code = po.pool.submit(function(x)
      local function inner() error("bad input " .. x) end
      inner()
    end, 42):wait()
    assert.are.equal("ERUNTIME", code)
    assert.matches("pool_spec.lua:%d+: bad input 42", err)
    assert.matches("stack traceback:", err)
    assert.matches("in function 'inner'", err)
  end)

  it("refuses what cannot cross, naming the path", function()
    local f = function() return 1 end
    assert.has_error(function() po.pool.submit(f, print) end, "po.pool.submit: cannot copy a function at args[1]")
    assert.has_error(function() po.pool.submit(f, 1, { a = { io.stdout } }) end,
      "po.pool.submit: cannot copy a userdata at args[2].a[1]")
    local t = { name = "loop" }
    t.child = { back = t }
    assert.has_error(function() po.pool.submit(f, t) end,
      "po.pool.submit: cannot copy a table that contains itself (a cycle) at args[1].child.back")
    assert.has_error(function() po.pool.submit(f, { [{}] = 1 }) end, "po.pool.submit: cannot copy a table key at args[1]")
    local function helper() end
    assert.has_error(function() po.pool.submit(function() return helper() end) end,
      "po.pool.submit: fn's upvalue 'helper' is a function, which cannot cross to a worker (modules from require and their functions can, and plain values are copied); pass { module = \"name\", fn = \"field\" } instead")
    local config = { on_error = print, level = 1 }
    assert.has_error(function() po.pool.submit(function() return config end) end,
      "po.pool.submit: cannot copy a function at upvalue 'config'.on_error")
    assert.has_error(function() po.pool.submit(print) end,
      "po.pool.submit: fn is a C function, which cannot cross to a worker; pass { module = \"name\", fn = \"field\" }")
    assert.has_error(function() po.pool.submit("code") end,
      "po.pool.submit: fn must be a Lua function without upvalues, or { module = \"name\", fn = \"field\" }, got string")
    local _, err, code = po.pool.submit(function() return { f = function() end } end):wait()
    assert.are.equal("EINVAL", code)
    assert.are.equal("po.pool.submit: cannot copy a function at result[1].f", err)
  end)

  it("runs jobs on several workers at once, each with its own loop", function()
    po.pool.configure { workers = 2 }
    local flag = os.tmpname()
    os.remove(flag)
    -- The first job waits (po.sleep, on its worker's own loop) for a file the
    -- second creates: it can only finish if both run at the same time.
    local waiter = po.pool.submit(function(path)
      local deadline = po.now() + 10
      while po.now() < deadline do
        local f = io.open(path)
        if f then
          f:close()
          return true
        end
        po.sleep(0.005)
      end
      return false
    end, flag)
    local maker = po.pool.submit(function(path)
      local f = assert(io.open(path, "w"))
      f:close()
      return true
    end, flag)
    assert.is_true(maker:wait())
    assert.is_true(waiter:wait())
    os.remove(flag)
  end)

  it("refuses to submit from inside a worker", function()
    local _, err = po.pool.submit(function()
      return po.pool.submit(function() end)
    end):wait()
    assert.matches("po.pool.submit: not available inside a pool worker", err, 1, true)
    assert.is_true(po.pool.submit(function() return po.pool.in_worker() end):wait())
    assert.is_false(po.pool.in_worker())
  end)

  it("finishes po.async tasks a job left behind before the worker's next job", function()
    po.pool.configure { workers = 1 }
    local path = os.tmpname()
    os.remove(path)
    po.pool.submit(function(p)
      po.async(function()
        po.sleep(0.05)
        local f = assert(io.open(p, "w"))
        f:write("done")
        f:close()
      end)
      return true
    end, path):wait()
    local seen = po.pool.submit(function(p)
      local f = io.open(p)
      local s = f and f:read("*a")
      if f then
        f:close()
      end
      return s
    end, path):wait()
    assert.are.equal("done", seen)
    os.remove(path)
  end)

  it("cancels a queued job so that it never runs", function()
    po.pool.configure { workers = 1 }
    local path = os.tmpname()
    os.remove(path)
    local busy = po.pool.submit(function() po.sleep(0.2) return "busy" end)
    local queued = po.pool.submit(function(p)
      local f = assert(io.open(p, "w"))
      f:close()
    end, path)
    assert.is_true(queued:cancel())
    assert.are.equal("busy", busy:wait())
    assert.are.equal(0, po.pool.submit(function() return 0 end):wait()) -- runs after the canceled one
    assert.is_false(exists(path))
    local _, _, code = queued:wait()
    assert.are.equal("ECANCELED", code)
  end)

  it("configure refuses to resize with jobs in flight and reports stats", function()
    po.pool.configure { workers = 1 }
    local fut = po.pool.submit(function() po.sleep(0.1) return true end)
    assert.has_error(function() po.pool.configure { workers = 2 } end,
      "po.pool.configure: 1 job(s) in flight; resize the pool before submitting or once they have finished")
    local stats = po.pool.stats()
    assert.are.equal(1, stats.workers)
    assert.is_true(stats.started)
    assert.are.equal(1, stats.in_flight)
    assert.is_true(fut:wait())
    po.pool.configure { workers = 2 }
    assert.are.equal(2, po.pool.stats().workers)
    assert.is_false(po.pool.stats().started)
    assert.has_error(function() po.pool.configure { workers = 0 } end,
      "po.pool.configure: workers must be a whole number from 1 to 1024")
    assert.has_error(function() po.pool.configure { worker = 2 } end, "po.pool.configure: unknown option 'worker'")
  end)

  it("shutdown cancels queued jobs, lets running ones finish, and the pool starts again", function()
    po.pool.configure { workers = 1 }
    local running = po.pool.submit(function() po.sleep(0.1) return "finished" end)
    local queued = po.pool.submit(function() return "ran" end)
    local deadline = po.now() + 10
    while po.pool.stats().running == 0 and po.now() < deadline do
      po.sleep(0.005)
    end
    po.pool.shutdown()
    assert.are.equal("finished", running:wait())
    local _, err, code = queued:wait()
    assert.are.equal("ECANCELED", code)
    assert.matches("shut down", err)
    assert.is_false(po.pool.stats().started)
    assert.are.equal("again", po.pool.submit(function() return "again" end):wait())
  end)

  it("batch runs many jobs with one callback, the shared values copied once", function()
    po.pool.configure { workers = 2 }
    local got, done = {}, po.future()
    local b = po.pool.batch(function(id, seconds, a, b2)
      got[id] = { seconds = seconds, a = a, b = b2 }
      if id == 150 then
        done:resolve()
      end
    end, { base = 100 })
    for i = 1, 150 do -- more than a chunk: the first ones go over while the rest are submitted
      b:submit(i, function(shared, k) return shared.base + k, k % 2 == 0 end, i)
    end
    b:flush()
    assert.is_nil(select(2, done:wait(10)))
    while b:in_flight() > 0 do
      po.sleep(0.001)
    end
    for i = 1, 150 do
      assert.are.equal(100 + i, got[i].a)
      assert.are.equal(i % 2 == 0, got[i].b)
      assert.is_true(got[i].seconds >= 0)
    end
  end)

  it("batch reports errors with their traceback, and hands jobs over at the next wait without flush", function()
    local got = {}
    local b = po.pool.batch(function(id, seconds, msg, code) got[id] = { seconds, msg, code } end)
    b:submit(1, function()
      local function inner() error("batch job broke") end
      inner()
    end)
    b:submit(2, { module = "poengine.proc", fn = "nope" })
    b:submit(3, { module = "string", fn = "rep" }, "ab", 2)
    local deadline = po.now() + 10
    while b:in_flight() > 0 and po.now() < deadline do
      po.sleep(0.001) -- no flush: the wait hands them over
    end
    assert.is_nil(got[1][1])
    assert.matches("pool_spec.lua:%d+: batch job broke", got[1][2])
    assert.matches("in function 'inner'", got[1][2])
    assert.are.equal("ERUNTIME", got[1][3])
    assert.matches("poengine.proc.nope is a nil, not a function", got[2][2], 1, true)
    assert.are.equal("abab", got[3][2])
  end)

  it("batch cancel keeps a queued job from running, and checks ids", function()
    po.pool.configure { workers = 1 }
    local path = os.tmpname()
    os.remove(path)
    local got = {}
    local b = po.pool.batch(function(id, seconds, a, code) got[id] = { seconds, a, code } end)
    b:submit(1, function() po.sleep(0.1) return "slow" end)
    b:submit(2, function(p)
      local f = assert(io.open(p, "w"))
      f:close()
    end, path)
    assert.has_error(function() b:submit(2, function() end) end, "b:submit: job 2 is still in flight in this batch")
    assert.has_error(function() b:submit(0, function() end) end,
      "b:submit: id must be a whole number from 1 to 100000000")
    assert.has_error(function() b:submit(3, print) end,
      "b:submit: fn is a C function, which cannot cross to a worker; pass { module = \"name\", fn = \"field\" }")
    assert.is_true(b:cancel(2))
    assert.is_false(b:cancel(7))
    b:flush()
    while b:in_flight() > 0 do
      po.sleep(0.005)
    end
    assert.are.equal("slow", got[1][2])
    assert.is_nil(got[2][1])
    assert.are.equal("ECANCELED", got[2][3])
    assert.is_false(exists(path))
    assert.has_error(function() po.pool.batch(function() end, { f = print }) end,
      "po.pool.batch: cannot copy a function at shared[1].f")
  end)

  it("batch abandon replaces the worker of a running job, which is never reported", function()
    po.pool.configure { workers = 1 }
    local release = os.tmpname()
    os.remove(release)
    local got = {}
    local b = po.pool.batch(function(id, seconds, a) got[id] = { seconds, a } end)
    -- Job 1 holds the only worker until the file exists; job 2 waits behind it.
    b:submit(1, function(p)
      while not io.open(p) do
        po.sleep(0.005)
      end
      return "late"
    end, release)
    b:submit(2, function() return "after" end)
    b:flush()
    while not b:started(1) do
      po.sleep(0.005)
    end
    assert.is_nil(b:started(2))
    assert.is_false(b:abandon(2)) -- queued, not running
    assert.is_true(b:abandon(1))
    assert.is_false(b:abandon(1))
    assert.is_nil(b:started(1)) -- no longer the batch's
    while not got[2] do -- runs on the new worker while job 1 still holds the old one
      po.sleep(0.005)
    end
    assert.are.equal("after", got[2][2])
    local stats = po.pool.stats()
    assert.are.equal(1, stats.workers)
    assert.are.equal(1, stats.abandoned)
    assert.are.equal(0, stats.in_flight)
    assert.are.equal(0, b:in_flight())
    assert(io.open(release, "w")):close()
    while po.pool.stats().abandoned > 0 do -- the old thread returns and leaves
      po.sleep(0.005)
    end
    po.sleep(0.05)
    assert.is_nil(got[1])
    os.remove(release)
    po.pool.configure { workers = 2 } -- nothing counts as in flight any more
  end)

  it("packs a job and plain values as bytes for another process", function()
    local scale = 3
    local packed = po.pool.pack(function(t, x) return po.json.encode(t), x * scale end, { 1, 2 }, 14)
    assert.are.equal("string", type(packed))
    local out = po.run_sync { argv = { po.executable(), "-e",
      "local fn, t, x = po.pool.unpack(io.read('*a')) io.write(po.pool.encode(fn(t, x)))" }, stdin = packed }
    assert.are.equal("ok", out.status, out.stderr)
    local json, n = po.pool.decode(out.stdout)
    assert.are.equal("[1,2]", json)
    assert.are.equal(42, n)
    local fn, a, b = po.pool.unpack(po.pool.pack({ module = "string", fn = "rep" }, "ab", 2))
    assert.are.equal("abab", fn(a, b))
    local values = { 0.1, -0.0, math.huge, "a\0b", { k = { true } } }
    assert.are.same(values, { po.pool.decode(po.pool.encode(unpack(values))) })
    assert.has_error(function() po.pool.unpack("not a job") end, "po.pool.unpack: s is not a job from po.pool.pack")
    assert.has_error(function() po.pool.unpack(packed:sub(1, -2)) end, "po.pool.unpack: s is not a job from po.pool.pack")
    assert.has_error(function() po.pool.decode(po.pool.encode(1) .. "x") end,
      "po.pool.decode: s has bytes after the values")
    assert.has_error(function() po.pool.encode(print) end, "po.pool.encode: cannot copy a function at value[1]")
    local function helper() end
    assert.has_error(function() po.pool.pack(function() return helper() end) end,
      "po.pool.pack: fn's upvalue 'helper' is a function, which cannot cross to a worker (modules from require and their functions can, and plain values are copied); pass { module = \"name\", fn = \"field\" } instead")
  end)

  it("defaults to one worker per online CPU", function()
    local cpus = tonumber(io.popen("nproc"):read("*l"))
    assert.are.equal(cpus, po.pool.cpu_count())
  end)
end)
