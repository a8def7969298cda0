-- po.metrics at the binding's edges: a range or bucket option of the wrong
-- type or size, and the histogram methods of the C object called on a
-- counter or a gauge (the Lua layer checks first; the binding must too),
-- and its type kept when poengine_core is opened a second time.
local po = require "poengine"
local core = require "poengine_core"
local raises = require("tests.tools.expect").raises

local metrics = po.metrics

describe("histogram options", function()
  it("take a positive number for each end of the range", function()
    raises("po.metrics.histogram: lowest must be a positive number", metrics.histogram, "opt_x", { lowest = "1" })
    raises("po.metrics.histogram: highest must be a positive number", metrics.histogram, "opt_x", { highest = 0 })
    raises("po.metrics.histogram: highest must be a positive number", metrics.histogram, "opt_x",
      { highest = 0 / 0 })
    local h = metrics.histogram("opt_range", { lowest = 0.5, highest = 5000 })
    assert.are.equal(0.5, h:info().lowest)
    assert.are.equal(5000, h:info().highest)
  end)

  it("take a list of 1 to 64 bounds", function()
    raises("po.metrics.histogram: buckets must be a list of numbers", metrics.histogram, "opt_x", { buckets = 1 })
    local bounds = {}
    for i = 1, 65 do bounds[i] = i end
    raises("po.metrics.histogram: buckets must hold 1 to 64 bounds", metrics.histogram, "opt_x", { buckets = bounds })
    bounds[65] = nil
    assert.are.equal(64, #metrics.histogram("opt_64", { buckets = bounds }):info().buckets)
  end)
end)

describe("the C object's histogram methods", function()
  it("refuse a counter or a gauge, naming its type", function()
    local c = core.metrics.register("counter", "opt_raw_counter")
    local g = core.metrics.register("gauge", "opt_raw_gauge")
    local h = core.metrics.register("histogram", "opt_raw_hist")
    raises("histogram:percentile: the metric is a counter, not a histogram", c.percentile, c, 50)
    raises("histogram:snapshot: the metric is a gauge, not a histogram", g.snapshot, g)
    raises("histogram:merge: the metric is a counter, not a histogram", h.merge, h, c)
    raises("histogram:merge: the metric is a gauge, not a histogram", g.merge, g, h)
  end)

  it("keeps its type when poengine_core is opened again in the same state", function()
    local before = core.metrics.register("histogram", "opt_reopened")
    package.loaded.poengine_core = nil
    local ok, again = pcall(require, "poengine_core")
    package.loaded.poengine_core = core
    assert(ok, again)
    assert.are_not.equal(core, again)
    local after = again.metrics.register("histogram", "opt_reopened")
    assert.are.equal(getmetatable(before), getmetatable(after))
    before:observe(1)
    assert.are.equal(1, after:snapshot().count)
  end)
end)
