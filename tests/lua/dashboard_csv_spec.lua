-- The csv format writes each cycle's metadata as its JSON text; within a
-- render it reuses the text of metadata it has seen with the same content.
-- Whatever the metadata, each row's last field must be exactly what
-- encoding that row's own table gives.
local po = require "poengine"
local escape = require "poengine.dashboard.escape"

local SORTED = { sort_keys = true }

local function expected(meta)
  if type(meta) ~= "table" then
    return escape.csv(meta)
  end
  if next(meta) == nil then
    return ""
  end
  local ok, text = pcall(po.json.encode, meta, SORTED)
  return escape.csv(ok and text or tostring(meta))
end

local function rows(metas)
  local cycles = {}
  for i, m in ipairs(metas) do
    cycles[i] = { cycle_id = "c" .. i, start_time = 1767225600 + i, end_time = 1767225601 + i, duration = 1,
      success = true, metadata = m }
  end
  local text = assert(po.dashboard.new(cycles):render("csv"))
  local list = {}
  for line in text:gmatch("([^\r]*)\r\n") do
    list[#list + 1] = line
  end
  table.remove(list, 1) -- the header
  return list
end

local function check(metas)
  local list = rows(metas)
  assert.are.equal(#metas, #list)
  for i, m in ipairs(metas) do
    local want = "," .. expected(m)
    -- metadata, then the outcome columns (empty: no optimizer notes here)
    local line = list[i]:gsub(",,,,,,,,$", "")
    assert.are.equal(want, line:sub(-#want), "row " .. i)
  end
end

describe("po.dashboard csv metadata", function()
  it("writes each row's own metadata, whatever repeats", function()
    local mark = getmetatable(po.json.array())
    local metas = {
      { strategy = "inline", temperature = 0.2 },
      { strategy = "inline", temperature = 0.2 },
      { temperature = 0.2, strategy = "inline" },
      { strategy = "inline", temperature = 0.2, extra = true },
      { strategy = "inline" },
      { strategy = "inline", temperature = 0.3 },
      { strategy = "inline", temperature = "0.2" },
      { n = 0 },
      { n = -0.0 },
      { n = 0 },
      { n = 1 },
      { n = "1" },
      { n = true },
      { n = false },
      { n = 1 / 0 },
      { n = 0 / 0 },
      { nested = { 1, 2 } },
      { nested = { 1, 2 } },
      { nested = { 1, 3 } },
      { [1] = "a" },
      { [1] = "a" },
      { a = "\255" },
      { a = "\255" },
      { a = "x,\"y\"\n" },
      { a = "x,\"y\"\n" },
      setmetatable({ a = 1 }, mark),
      { a = 1 },
      setmetatable({ a = 1 }, mark),
      {},
      "plain, text",
      42,
      false,
    }
    check(metas)
  end)

  it("stays right past the memo's limit", function()
    local metas = {}
    for i = 1, 600 do
      metas[i] = { run = i % 300, strategy = i % 2 == 0 and "a" or "b" }
    end
    check(metas)
  end)
end)
