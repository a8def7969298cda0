-- po.dashboard's argument checks (each naming the function and what is
-- wrong), a section that fails while drawing, a store that cannot be read,
-- the charts' edge inputs (x bounds given, values unsorted or all equal,
-- a bin count given) and the formatters' edge values.
local po = require "poengine"
local proc = require "tests.tools.proc"

local dashboard = po.dashboard
local chart = dashboard.chart
local fmt = dashboard.fmt

local function cycles(n)
  local list = {}
  for i = 1, n do
    list[i] = { cycle_id = "c" .. i, start_time = 1767225600 + i * 10, end_time = 1767225605 + i * 10, duration = 5,
      success = true, score = i / 10, best_score = i / 10 }
  end
  return list
end

-- The message of the error fn(...) raises, without its position.
local function raised(fn, ...)
  local ok, err = pcall(fn, ...)
  assert.is_false(ok, "expected an error")
  return (tostring(err):gsub("^[^:]*:%d+: ", ""))
end

describe("po.dashboard's argument checks", function()
  it("section: its spec, the hooks, title and layout", function()
    local data = function() return {} end
    assert.are.equal("po.dashboard.section: expected a table, got string", raised(dashboard.section, "s"))
    assert.are.equal("po.dashboard.section: view must be a function, got string",
      raised(dashboard.section, { name = "args_a", data = data, view = "table" }))
    assert.are.equal("po.dashboard.section: title must be a string, got number",
      raised(dashboard.section, { name = "args_a", data = data, title = 3 }))
    assert.are.equal("po.dashboard.section: layout must be \"half\" or \"full\", got wide",
      raised(dashboard.section, { name = "args_a", data = data, layout = "wide" }))
  end)

  it("format: extensions must be a list of strings", function()
    local render = function() return "" end
    assert.are.equal("po.dashboard.format: extensions must be a list of strings",
      raised(dashboard.format, { name = "args_f", render = render, extensions = "txt" }))
    assert.are.equal("po.dashboard.format: extensions must be a list of strings",
      raised(dashboard.format, { name = "args_f", render = render, extensions = { 7 } }))
  end)

  it("new: sections, recent, width, refresh and title", function()
    local list = cycles(2)
    local cases = {
      { { sections = "overview" }, "po.dashboard.new: sections must be a list of section names" },
      { { recent = -1 }, "po.dashboard.new: recent must be a non-negative number" },
      { { width = 39 }, "po.dashboard.new: width must be a number of at least 40" },
      { { refresh = 0.5 }, "po.dashboard.new: refresh must be a number of seconds, at least 1" },
      { { title = 5 }, "po.dashboard.new: title must be a string" },
    }
    for _, case in ipairs(cases) do
      assert.are.equal(case[2], raised(dashboard.new, list, case[1]))
    end
  end)

  it("write: path must be a non-empty string", function()
    local d = dashboard.new(cycles(1))
    assert.are.equal("po.dashboard:write: path must be a non-empty string", raised(d.write, d, ""))
    assert.are.equal("po.dashboard:write: path must be a non-empty string", raised(d.write, d, nil))
  end)

  it("the charts: options, sizes and series", function()
    assert.are.equal("po.dashboard.chart.line: expected a table of options, got string", raised(chart.line, "x"))
    assert.are.equal("po.dashboard.chart: width and height must be numbers of at least 120 and 80",
      raised(chart.line, { y = { 1 }, width = 100 }))
    assert.are.equal("po.dashboard.chart.line: series[2].y must be a list of numbers",
      raised(chart.line, { series = { { y = { 1 } }, { y = 5 } } }))
    assert.are.equal("po.dashboard.chart.bar: labels and values (or series) must be lists",
      raised(chart.bar, { labels = "a" }))
    assert.are.equal("po.dashboard.chart.bar: values (and each series' values) must be lists",
      raised(chart.bar, { series = { { values = 3 } } }))
    assert.are.equal("po.dashboard.chart.histogram: values must be a list of numbers",
      raised(chart.histogram, { values = 3 }))
  end)
end)

describe("po.dashboard, failures it reports", function()
  it("a section whose view raises is drawn as a note with the first line of its error", function()
    dashboard.section { name = "args_broken", data = function() return { 1 } end,
      view = function() error("the view broke\nsecond line", 0) end }
    local text = assert(dashboard.new(cycles(2), { sections = { "args_broken" } }):render("text"))
    assert.truthy(text:find("section 'args_broken' failed: the view broke", 1, true), text)
    assert.falsy(text:find("second line", 1, true))
  end)

  it("a store that is not an LMDB store: render and write give the collector's failure", function()
    local dir = proc.tempdir()
    local f = assert(io.open(dir .. "/data.mdb", "wb"))
    f:write(("not a store\n"):rep(1000))
    f:close()
    local d = dashboard.new(dir)
    local text, msg, code = d:render("text")
    assert.is_nil(text)
    assert.are.equal("ESTORE", code)
    assert.is_string(msg)
    local ok, wmsg, wcode = d:write(dir .. "/out.txt")
    assert.are.same({ nil, msg, code }, { ok, wmsg, wcode })
    assert.is_nil(io.open(dir .. "/out.txt"))
    os.execute("rm -rf " .. proc.quote(dir))
  end)
end)

describe("po.dashboard.chart's edge inputs", function()
  it("ticks: bounds given in either order are the same; non-finite bounds give 0..1", function()
    assert.are.same({ chart.ticks(0, 10) }, { chart.ticks(10, 0) })
    assert.are.same({ 0, 1, 0.2 }, { chart.ticks(0 / 0, 1) })
    assert.are.same({ 0, 1, 0.2 }, { chart.ticks(0, math.huge) })
  end)

  it("line: x_min and x_max bound the x axis as given", function()
    local svg = chart.line { x = { 3, 4, 5 }, y = { 1, 2, 3 }, x_min = 0, x_max = 10 }
    assert.truthy(svg:find(">0<", 1, true), svg)
    assert.truthy(svg:find(">10<", 1, true), svg)
  end)

  it("bins: unsorted values are counted as sorted ones; a bin count splits the range evenly", function()
    assert.are.same({ chart.bins { 1, 2, 3, 4, 5, 6, 7, 8 } }, { chart.bins { 8, 3, 1, 7, 2, 6, 5, 4 } })
    local counts, edges, n = chart.bins({ 4, 0, 1, 2 }, 2)
    assert.are.same({ { 2, 2 }, { 0, 2, 4 }, 4 }, { counts, edges, n })
    -- the largest value falls in the last bin, not one past it
    counts = chart.bins({ 0, 10 }, 5)
    assert.are.same({ 1, 0, 0, 0, 1 }, counts)
  end)
end)

describe("po.dashboard.fmt's edge values", function()
  it("a number just under 10^digits rounds up without negative decimals", function()
    assert.are.equal("10000", fmt.num(10000 - 1e-12, 4))
  end)

  it("non-numbers are a dash (compact, pct, datetime); exact writes big integers in full", function()
    local dash = fmt.compact(nil)
    assert.are.equal("–", dash)
    assert.are.same({ dash, dash }, { fmt.pct("x"), fmt.datetime(nil) })
    assert.are.equal("1000000000000000", fmt.exact(1e15))
    assert.are.equal("-123456789012345", fmt.exact(-123456789012345))
  end)

  it("truncate to no columns is empty", function()
    assert.are.same({ "", "" }, { fmt.truncate("hello", 0), fmt.truncate("hello", -3) })
  end)
end)

describe("po.dashboard's blocks for data without a view", function()
  local blocks = require "poengine.dashboard.blocks"

  it("a scalar is a note; a fraction keeps 4 significant digits", function()
    assert.are.same({ { "note", text = "2.5" } }, blocks.auto(2.5))
    assert.are.same({ { "note", text = "0.3333" } }, blocks.auto(1 / 3))
  end)

  it("a list of records is a table of every key, sorted, numeric keys found by their text", function()
    local t = blocks.auto({ { a = 1.25, [2] = "two" }, { b = { 1 } } })[1]
    assert.are.equal("table", t[1])
    assert.are.same({ "2", "a", "b" }, { t.columns[1][1], t.columns[2][1], t.columns[3][1] })
    assert.are.same({ { "two", "1.25", "" }, { "", "", "[1]" } }, t.rows)
  end)

  it("a record's table values are JSON text, or their plain name when JSON cannot hold them", function()
    local kv = blocks.auto({ opts = { x = 1 }, bad = { f = print }, n = 3 })[1]
    assert.are.equal("kv", kv[1])
    assert.are.same({ "n", "3" }, kv.items[2])
    assert.are.same({ "opts", "{\"x\":1}" }, kv.items[3])
    assert.are.equal("bad", kv.items[1][1])
    assert.matches("^table: ", kv.items[1][2])
  end)

  it("a sparkline of nothing is empty, and a value that is not a number leaves a gap", function()
    assert.are.equal("", blocks.sparkline({}, 5))
    local line = blocks.sparkline({ 1, 0 / 0, 3 }, 3)
    assert.are.equal(" ", line:sub(4, 4))
  end)
end)
