-- po.profile: wrapped functions record calls, errors and durations; errors
-- are re-raised unchanged; the report is sorted by total time.
local po = require "poengine"

local function find(name)
  for _, r in ipairs(po.profile.report()) do
    if r.name == name then return r end
  end
end

describe("po.profile", function()
  it("wraps a function: same arguments, same results, each call timed", function()
    local f = po.profile("spec.add", function(a, b, ...) return a + b, nil, select("#", ...) end)
    for _ = 1, 3 do
      local sum, none, extra = f(2, 3, nil, nil)
      assert.are.equal(5, sum)
      assert.is_nil(none)
      assert.are.equal(2, extra)
    end
    assert.are.equal(3, select("#", f(1, 1)))
    local r = find("spec.add")
    assert.are.equal(4, r.calls)
    assert.are.equal(0, r.errors)
    assert(r.total > 0 and r.min <= r.mean and r.mean <= r.max)
    for _, k in ipairs { "p50", "p90", "p99" } do assert.is_number(r[k]) end
  end)

  it("counts an error and re-raises it unchanged", function()
    local object = { reason = "bad" }
    local f = po.profile("spec.fail", function(kind)
      if kind == "table" then error(object) end
      if kind == "string" then error("plain message", 0) end
      return "fine"
    end)
    local ok, err = pcall(f, "table")
    assert.is_false(ok)
    assert.are.equal(object, err) -- the very same value
    ok, err = pcall(f, "string")
    assert.is_false(ok)
    assert.are.equal("plain message", err) -- no position added
    assert.are.equal("fine", f())
    local r = find("spec.fail")
    assert.are.equal(3, r.calls)
    assert.are.equal(2, r.errors)
  end)

  it("reports by total time, largest first", function()
    local slow = po.profile("spec.slow", function() po.sleep(0.03) end)
    local quick = po.profile("spec.quick", function() end)
    slow()
    for _ = 1, 10 do quick() end
    local report = po.profile.report()
    for i = 2, #report do assert(report[i - 1].total >= report[i].total) end
    local at = {}
    for i, r in ipairs(report) do at[r.name] = i end
    assert(at["spec.slow"] < at["spec.quick"])
    assert(find("spec.slow").total >= 0.03)
    assert.are.equal(10, find("spec.quick").calls)
  end)

  it("works inside tasks that wait", function()
    local f = po.profile("spec.async", function(x) po.sleep(0.01) return x * 2 end)
    local futures = {}
    for i = 1, 5 do futures[i] = po.async(f, i) end
    local results = po.all(futures)
    assert.are.same({ 2, 4, 6, 8, 10 }, { results[1], results[2], results[3], results[4], results[5] })
    assert.are.equal(5, find("spec.async").calls)
  end)

  it("shares one record per name and refuses bad arguments", function()
    local a = po.profile("spec.shared", function() end)
    local b = po.profile.wrap("spec.shared", setmetatable({}, { __call = function() end }))
    a()
    b()
    assert.are.equal(2, find("spec.shared").calls)
    assert.has_error(function() po.profile("", print) end, "po.profile: name must be a non-empty string, got string")
    assert.has_error(function() po.profile(1, print) end, "po.profile: name must be a non-empty string, got number")
    assert.has_error(function() po.profile("x", 1) end, "po.profile: fn must be callable, got number")
    assert.has_error(function() po.profile("x") end, "po.profile: fn must be callable, got nil")
  end)
end)
