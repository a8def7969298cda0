-- poengine.metrics.sort: the same order as table.sort for lists of numbers,
-- at every size around the insertion-sort runs and the merge widths, on
-- random, ordered, reversed and repetitive input.
local sort = require("poengine.metrics.sort").numbers

-- A small deterministic generator, so a failure can be replayed.
local function rng(seed)
  local state = seed
  return function()
    state = (state * 48271) % 2147483647
    return state / 2147483647
  end
end

local function check(list)
  local want, got = {}, {}
  for i = 1, #list do
    want[i], got[i] = list[i], list[i]
  end
  table.sort(want)
  assert.are.equal(got, sort(got))
  assert.are.same(want, got)
end

describe("poengine.metrics.sort", function()
  it("sorts as table.sort does, at every size up to 300", function()
    local rand = rng(7)
    for n = 0, 300 do
      local random, ordered, reversed, few = {}, {}, {}, {}
      for i = 1, n do
        random[i] = (rand() - 0.5) * 1e6
        ordered[i] = i * 0.5
        reversed[i] = -i
        few[i] = math.floor(rand() * 4)
      end
      check(random)
      check(ordered)
      check(reversed)
      check(few)
    end
  end)

  it("sorts long lists, and only the first n values when given n", function()
    local rand = rng(11)
    for _, n in ipairs { 1000, 4097, 10000 } do
      local list = {}
      for i = 1, n do
        list[i] = rand() < 0.1 and 0 or rand() * 100
      end
      check(list)
      -- nearly in order: runs of ascending values with a few out of place
      for i = 1, n do
        list[i] = i + (rand() < 0.05 and rand() * 50 or 0)
      end
      check(list)
    end
    local list = { 5, 4, 3, 2, 1, 0 }
    sort(list, 3)
    assert.are.same({ 3, 4, 5, 2, 1, 0 }, list)
    list = {}
    for i = 1, 40 do
      list[i] = 41 - i
    end
    sort(list, 30)
    for i = 1, 30 do
      assert.are.equal(10 + i, list[i])
    end
    for i = 31, 40 do
      assert.are.equal(41 - i, list[i])
    end
  end)

  it("keeps infinities and negative numbers in order", function()
    check { math.huge, -1, 0, -math.huge, 2.5, -0.5, 1e300, -1e-300 }
    local list = {}
    for i = 1, 50 do
      list[i] = i % 3 == 0 and math.huge or i % 3 == 1 and -math.huge or -i
    end
    check(list)
  end)
end)
