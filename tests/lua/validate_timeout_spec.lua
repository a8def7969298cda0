-- Hard timeouts for function validators: runaway functions on the pool
-- (their workers abandoned and replaced) and in isolated child processes
-- (killed), against real threads and processes.
local po = require "poengine"
local v = po.validate

-- Runaway pool functions keep a core busy until their process ends, so the
-- pool scenarios run in a child poengine, which must exit on its own.
local function run_script(text)
  local path = os.tmpname()
  local f = assert(io.open(path, "w"))
  f:write(text)
  f:close()
  local res = po.run_sync { argv = { po.executable(), path }, timeout = 120 }
  os.remove(path)
  return res
end

-- An endless C call: a pattern that backtracks over 10^5 characters.
local BACKTRACK = 'return ("a"):rep(1e5):find("(.-)(.-)(.-)b")'

describe("pool function validators past their timeout", function()
  it("are reported as timeouts or canceled, their workers replaced, and the process still exits", function()
    local res = run_script([[
      po.pool.configure { workers = 2 }
      -- A validator that passes only if its twin runs at the same time.
      local function rendezvous(mine, other)
        return loadstring(([=[
          local c = ...
          assert(io.open(c.dir .. "/%s", "w")):close()
          local deadline = po.now() + 30
          while po.now() < deadline do
            local f = io.open(c.dir .. "/%s")
            if f then
              f:close()
              return true
            end
            po.sleep(0.005)
          end
          return false]=]):format(mine, other))
      end
      local dir = os.tmpname()
      os.remove(dir)
      os.execute("mkdir " .. dir)
      local report = po.validate.run({
        { name = "loop", timeout = 0.3, run = function() while true do end end },
        { name = "c_call", timeout = 0.3, run = function() ]] .. BACKTRACK .. [[ end },
        -- queued behind the two runaways, with a shorter timeout than its wait
        { name = "queued", timeout = 0.2, run = function(c) return c.ok, { ran = true } end },
        { name = "blocks", timeout = 0.3, run = function() po.sleep(1e6) end },
      }, { ok = true })
      local after = po.validate.run({
        { name = "a", run = rendezvous("a", "b") },
        { name = "b", run = rendezvous("b", "a") },
      }, { dir = dir })
      os.execute("rm -rf " .. dir)
      -- fail_fast cancels a runaway: it is abandoned as well
      local canceled = po.validate.run({
        { name = "spins", run = function() while true do end end },
        { name = "fails", run = function() po.sleep(0.05) return false end },
      }, {}, { fail_fast = true })
      local out = { stats = po.pool.stats(), spins = { status = canceled.results[1].status } }
      for _, r in ipairs(report.results) do
        out[r.name] = { status = r.status, error = r.errors[1], details = r.details }
      end
      for _, r in ipairs(after.results) do
        out[r.name] = { status = r.status }
      end
      io.write(po.json.encode(out))
    ]])
    assert.are.equal("ok", res.status, res.stderr)
    assert.are.equal(0, res.code)
    local out = po.json.decode(res.stdout)
    for _, name in ipairs { "loop", "c_call", "blocks" } do
      assert.are.equal("timeout", out[name].status, name)
      assert.matches("timed out after 0.3 s (its worker was replaced", out[name].error, 1, true)
    end
    assert.are.equal("ok", out.queued.status)
    assert.is_true(out.queued.details.ran)
    -- Both workers are live again: two validators that wait for each other pass.
    assert.are.equal("ok", out.a.status)
    assert.are.equal("ok", out.b.status)
    assert.are.equal(2, out.stats.workers)
    assert.are.equal("canceled", out.spins.status)
    assert.are.equal(4, out.stats.abandoned)
    assert.are.equal(0, out.stats.in_flight)
  end)
end)

describe("isolated function validators (isolate = true)", function()
  it("run in a child process: results, details and the candidate cross; prints go to stderr", function()
    local limit = 7
    local report = v.run({
      { name = "passes", isolate = true, run = function(c)
        print("noise on stdout")
        return c.n < limit, { seen = c.n, list = { 1.5, "x" }, warnings = { "careful" } }
      end },
      { name = "module", isolate = true, run = { module = "string", fn = "rep", arg = 2 } },
      { name = "raises", isolate = true, run = function(c) error("bad candidate " .. c.n) end },
    }, { n = 3 })
    local r = report.by_name
    assert.are.equal("ok", r.passes.status)
    assert.are.same({ seen = 3, list = { 1.5, "x" } }, r.passes.details)
    assert.are.same({ "careful" }, r.passes.warnings)
    assert.matches("noise on stdout", r.passes.stderr, 1, true)
    assert.are.equal("error", r.module.status) -- string.rep(candidate table, 2)
    assert.are.equal("error", r.raises.status)
    assert.matches("validate_timeout_spec.lua:%d+: bad candidate 3", r.raises.errors[1])
    assert.matches("stack traceback:", r.raises.errors[1])
  end)

  it("are killed at their deadline: an endless loop, an endless C call, a blocked call", function()
    local t0 = po.now()
    local report = v.run({
      { name = "loop", isolate = true, timeout = 0.3, run = function() while true do end end },
      { name = "c_call", isolate = true, timeout = 0.3, run = loadstring(BACKTRACK) },
      { name = "blocks", isolate = true, timeout = 0.3, run = function() os.execute("sleep 1000") end },
      { name = "quick", isolate = true, timeout = 30, run = function() return true end },
    }, {})
    for _, name in ipairs { "loop", "c_call", "blocks" } do
      assert.are.equal("timeout", report.by_name[name].status, name)
      assert.matches("timed out after 0.3 s (its process was killed)", report.by_name[name].errors[1], 1, true)
    end
    assert.are.equal("ok", report.by_name.quick.status)
    -- The blocked call's grandchild was killed with its process group: the
    -- run did not wait out its 1000 s.
    assert.is_true(po.now() - t0 < 900)
    assert.are.equal(0, po.pool.stats().in_flight)
  end)

  it("leave nothing lost when the abandoned worker had used its event loop", function()
    -- The worker's loop lives as long as its thread (to the process's end);
    -- under scripts/test --sanitize, LeakSanitizer would fail the child's
    -- exit status if it could not reach it.
    local res = run_script([[
      po.pool.configure { workers = 1 }
      local slept = po.validate.run({ { name = "sleeps", run = function() po.sleep(0.01) return true end } }, {})
      local spun = po.validate.run({ { name = "spins", timeout = 0.3, run = function() while true do end end } }, {})
      io.write(slept.results[1].status, " ", spun.results[1].status)
    ]])
    assert.are.equal("ok", res.status, res.stderr)
    assert.are.equal("ok timeout", res.stdout)
    assert.is_nil(res.stderr:find("LeakSanitizer", 1, true), res.stderr)
  end)

  it("stop a runaway allocation at memory_limit with ENOMEM", function()
    local report = v.run({
      { name = "hog", isolate = true, memory_limit = 64 * 2 ^ 20, timeout = 60, run = function()
        local t = {}
        for i = 1, 1e9 do
          t[i] = ("x"):rep(4096) .. i
        end
      end },
    }, {})
    local r = report.by_name.hog
    assert.are.equal("error", r.status)
    assert.matches("^ENOMEM: out of memory %(memory_limit = 67108864 bytes%)", r.errors[1])
    assert.are.equal("ENOMEM", r.details.code)
  end)

  it("refuse what cannot cross, and check their options", function()
    local function helper() end
    local report = v.run({ { name = "upvalue", isolate = true, run = function() return helper() end } }, {})
    assert.are.equal("error", report.results[1].status)
    assert.matches("fn's upvalue 'helper' is a function", report.results[1].errors[1], 1, true)
    assert.has_error(function() v.run({ { name = "x", isolate = true, run = { "true" } } }, {}) end,
      "po.validate.run: validators[1] (x): isolate applies to a function or { module =, fn = } run, not inline")
    assert.has_error(function() v.run({ { name = "x", isolate = "yes", run = function() end } }, {}) end,
      "po.validate.run: validators[1] (x): isolate must be a boolean")
    assert.has_error(function() v.run({ { name = "x", memory_limit = 2 ^ 20, run = function() end } }, {}) end,
      "po.validate.run: validators[1] (x): memory_limit must be a positive number of bytes, with isolate = true")
  end)
end)
