-- The optimizer's `search` proposer: grid, random and hill climbing over a
-- declared parameter space, deterministic for a seed.
local search = require "poengine.optimizer.search"

local space = {
  opt = { "-O0", "-O1", "-O2", "-O3" },
  unroll = { "", "-funroll-loops" },
  block = { min = 16, max = 64, step = 16 },
}

local function keys(s, points)
  local out = {}
  for i, p in ipairs(points) do
    out[i] = s:key(p)
  end
  return out
end

describe("search", function()
  it("grid walks every combination once, in a fixed order", function()
    local s = search.new { space = space, strategy = "grid" }
    local all = s:propose(100)
    assert.are.equal(4 * 2 * 4, #all)
    assert.are.same({ block = 16, opt = "-O0", unroll = "" }, all[1])
    assert.are.same({ block = 16, opt = "-O0", unroll = "-funroll-loops" }, all[2])
    local seen = {}
    for _, k in ipairs(keys(s, all)) do
      assert.is_nil(seen[k])
      seen[k] = true
    end
    assert.is_true(s:exhausted())
    assert.are.same({}, s:propose(5))
  end)

  it("random covers the space without repeating itself, the same way for the same seed", function()
    local a = search.new { space = space, strategy = "random", seed = 42 }
    local b = search.new { space = space, strategy = "random", seed = 42 }
    local c = search.new { space = space, strategy = "random", seed = 7 }
    local pa, pb, pc = a:propose(32), b:propose(32), c:propose(32)
    assert.are.same(keys(a, pa), keys(b, pb))
    assert.are_not.same(keys(a, pa), keys(c, pc))
    local seen = {}
    for _, k in ipairs(keys(a, pa)) do
      assert.is_nil(seen[k])
      seen[k] = true
    end
    assert.are.equal(32, #pa)
    assert.is_true(a:exhausted())
  end)

  it("hill climbing finds the optimum of a smooth objective without trying everything", function()
    local big = { x = { min = 0, max = 100 }, y = { min = 0, max = 100 } }
    local s = search.new { space = big, strategy = "hill", seed = 3, direction = "min", start = { x = 10, y = 90 } }
    local function cost(p)
      return (p.x - 70) ^ 2 + (p.y - 20) ^ 2
    end
    local tried = 0
    while not (s.best and s.best.score == 0) and tried < 2000 do
      for _, p in ipairs(s:propose(4)) do
        tried = tried + 1
        s:observe(p, cost(p))
      end
    end
    assert.are.same({ x = 70, y = 20 }, s.best.point)
    assert.is_true(tried < 101 * 101 / 10, "tried " .. tried)
  end)

  it("maximizes when asked and ignores failed points", function()
    local s = search.new { space = { v = { 1, 2, 3 } }, strategy = "grid", direction = "max" }
    local pts = s:propose(3)
    s:observe(pts[1], 5)
    s:observe(pts[2], nil)
    s:observe(pts[3], 9)
    assert.are.equal(9, s.best.score)
    assert.are.same({ v = 3 }, s.best.point)
  end)

  it("rejects bad spaces and options, naming what is wrong", function()
    assert.has_error(function() search.new { space = {} } end, "search: space must be a non-empty table of parameters")
    assert.has_error(function() search.new { space = { x = 5 } } end,
      "search: parameter 'x' must be a list of values or { min =, max = [, step =] }")
    assert.has_error(function() search.new { space = { x = { min = 5, max = 1 } } } end,
      "search: parameter 'x' needs numbers min <= max and step > 0")
    assert.has_error(function() search.new { space = space, strategy = "annealing" } end,
      "search.new: strategy must be 'grid', 'random' or 'hill', got annealing")
  end)
end)
