-- The "Pareto front" section: the front of the latest cycle that has one
-- (a later cycle without metadata.pareto does not hide it), tuple scores
-- as (a, b), ids written as text, a missing speedup as a dash.
local po = require "poengine"

local function cycle(id, t, pareto)
  return { cycle_id = id, start_time = t, end_time = t + 1, duration = 1, success = true,
    metadata = pareto and { pareto = pareto } or nil }
end

describe("the Pareto front section", function()
  local cycles = {
    cycle("c1", 1, { { cycle = 1, id = "c1.1", score = { 0.5, 3 }, speedup = 1.25 } }),
    cycle("c2", 3, { { cycle = 1, id = "c1.1", score = { 0.5, 3 }, speedup = 1.25 }, { cycle = 2, id = 7, score = 0.25 } }),
    cycle("c3", 5, nil),
  }

  it("gives the latest front in the JSON format, ids as text", function()
    local doc = assert(po.json.decode(assert(po.dashboard.new(cycles, { sections = { "pareto" } }):render("json"))))
    assert.are.same({ cycle_id = "c2", front = {
      { cycle = 1, id = "c1.1", score = { 0.5, 3 }, speedup = 1.25 },
      { cycle = 2, id = "7", score = 0.25 },
    } }, doc.sections.pareto)
  end)

  it("draws it as a table: a tuple score as (a, b), no speedup as a dash", function()
    local text = assert(po.dashboard.new(cycles, { sections = { "pareto" } }):render("text"))
    assert.truthy(text:find("  c1.1           1  (0.5, 3)    1.25x\n", 1, true), text)
    assert.truthy(text:find("  7              2      0.25        –\n", 1, true), text)
  end)

  it("says when no cycle has a front", function()
    local text = assert(po.dashboard.new({ cycle("c1", 1, nil) }, { sections = { "pareto" } }):render("text"))
    assert.truthy(text:find("no Pareto front: the task does not set objective.pareto", 1, true), text)
  end)
end)
