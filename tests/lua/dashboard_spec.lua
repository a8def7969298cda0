-- po.dashboard: sources, sections, every format, escaping, the extension API.
-- Formats that other programs read are checked with real parsers: CSV with
-- Python's csv module, SVG with Python's XML parser, JSON with po.json.
local po = require "poengine"
local proc = require "tests.tools.proc"
local q = proc.quote

local dashboard = po.dashboard
local fmt = dashboard.fmt

local EVIL = "<script>alert(1)</script>"

-- n cycle records, deterministic, with everything the sections read.
local function cycles(n, opts)
  opts = opts or {}
  local list, best = {}, nil
  local t = 1767225600
  for i = 1, n do
    local calls = 1 + i % 5
    local hits = i % 3 == 0 and calls or (i % 2)
    local dur = 1 + (i % 7) * 0.5
    local score = 0.5 + i / (n + 1) * 0.4 - (i % 4) * 0.01
    best = best and math.max(best, score) or score
    local ok = i % 9 ~= 0
    list[i] = {
      cycle_id = "cycle-" .. i, start_time = t, end_time = t + dur, duration = dur,
      llm_calls = calls, llm_cache_hits = hits, llm_cache_misses = calls - hits,
      tokens_in = (calls - hits) * 100, tokens_out = (calls - hits) * 40, cost = (calls - hits) * 0.002,
      validation_time = dur / 2, validation_count = 2, file_operations = i % 3,
      success = ok, error = not ok and "tests failed" or nil,
      metadata = { strategy = "s" .. (i % 2) }, score = score, best_score = best,
    }
    if opts.providers then
      list[i].providers = { openai = { calls = calls, cache_hits = hits, tokens_in = 1, tokens_out = 1, cost = 0.001,
        latency = 0.5 } }
      list[i].validators = { build = { runs = 1, passed = ok, duration = dur / 4 } }
    end
    t = t + dur + 1
  end
  return list
end

local tempdir = proc.tempdir

local read = proc.read

local function lines(s)
  local out = {}
  for l in (s .. "\n"):gmatch("(.-)\r?\n") do
    out[#out + 1] = l
  end
  return out
end

local BUILTIN = { "text", "markdown", "json", "csv", "html", "prometheus" }

describe("po.dashboard.escape", function()
  local e = dashboard.escape

  it("html turns every markup character into an entity", function()
    assert.are.equal("&lt;script&gt;alert(1)&lt;/script&gt;", e.html(EVIL))
    assert.are.equal("a &amp; b &quot;c&quot; &#39;d&#39;", e.html([[a & b "c" 'd']]))
    assert.are.equal("x\239\191\189y\nz", e.html("x\0y\nz"))
    assert.are.equal("", e.html(nil))
    assert.are.equal("12", e.html(12))
  end)

  it("markdown keeps table cells whole and text inert", function()
    assert.are.equal("a \\| b c", e.markdown("a | b\nc"))
    assert.are.equal("\\`code\\` \\*b\\* \\_i\\_ \\[l\\](u)", e.markdown("`code` *b* _i_ [l](u)"))
    assert.are.equal("&lt;img src=x&gt; &amp;amp;", e.markdown("<img src=x> &amp;"))
    assert.are.equal("\\# title", e.markdown("# title"))
    assert.are.equal("\\- item", e.markdown("- item"))
    assert.are.equal("\\---", e.markdown("---"))
    assert.are.equal("1\\. first", e.markdown("1. first"))
    assert.are.equal("&gt; quote", e.markdown("> quote"))
    assert.are.equal("-1.5", e.markdown("-1.5"))
    assert.are.equal("45.7%", e.markdown("45.7%"))
    assert.are.equal("back\\\\slash", e.markdown("back\\slash"))
  end)

  it("csv quotes fields as RFC 4180 says", function()
    assert.are.equal("plain", e.csv("plain"))
    assert.are.equal('"a,b"', e.csv("a,b"))
    assert.are.equal('"say ""hi"""', e.csv('say "hi"'))
    assert.are.equal('"line\nbreak"', e.csv("line\nbreak"))
    assert.are.equal('"cr\rx"', e.csv("cr\rx"))
  end)

  it("text removes terminal control sequences", function()
    assert.are.equal("?[31mred?[0m a b", e.text("\27[31mred\27[0m a\nb"))
    assert.are.equal("csi?x", e.text("csi\194\155x"))
    assert.are.equal("caf\195\169", e.text("caf\195\169"))
  end)
end)

describe("po.dashboard.fmt", function()
  it("formats numbers, money, percentages and durations for people", function()
    assert.are.equal("1,234,567", fmt.int(1234567))
    assert.are.equal("-1,000", fmt.int(-1000))
    assert.are.equal("0.000123", fmt.num(0.000123))
    assert.are.equal("3.14", fmt.num(math.pi))
    assert.are.equal("45.7%", fmt.pct(0.4567))
    assert.are.equal("850 \194\181s", fmt.seconds(0.00085))
    assert.are.equal("12.3 ms", fmt.seconds(0.0123))
    assert.are.equal("4.56 s", fmt.seconds(4.56))
    assert.are.equal("3m 05s", fmt.seconds(185))
    assert.are.equal("2h 03m", fmt.seconds(7380))
    assert.are.equal("$0.0123", fmt.money(0.0123))
    assert.are.equal("$12.35", fmt.money(12.345))
    assert.are.equal("12.3k", fmt.compact(12345))
    assert.are.equal(fmt.none, fmt.num(nil))
    assert.are.equal(fmt.none, fmt.seconds(0 / 0))
  end)

  it("writes exact numbers and RFC 3339 times", function()
    assert.are.equal("0.1", fmt.exact(0.1))
    assert.are.equal("0.30000000000000004", fmt.exact(0.1 + 0.2))
    assert.are.equal("42", fmt.exact(42))
    assert.are.equal("", fmt.exact(nil))
    assert.are.equal("2026-01-01T00:00:00.250Z", fmt.rfc3339(1767225600.25))
    assert.are.equal("2.5e-05", fmt.exact(2.5e-05))
    assert.are.equal("0.006", fmt.exact(0.002 * 3))
    for i = 1, 2000 do
      local x = math.random() * 10 ^ math.random(-8, 8)
      assert.are.equal(x, tonumber(fmt.exact(x)))
      -- The calendar arithmetic agrees with the C library's.
      local t = math.random() * 4e9
      local ms = math.floor(t * 1000 + 0.5)
      local whole = math.floor(ms / 1000)
      assert.are.equal(os.date("!%Y-%m-%dT%H:%M:%S", whole) .. string.format(".%03dZ", ms - whole * 1000),
        fmt.rfc3339(t))
    end
  end)

  it("measures and cuts UTF-8 text by columns", function()
    assert.are.equal(4, fmt.width("caf\195\169"))
    assert.are.equal("ab\226\128\166", fmt.truncate("abcdef", 3))
    assert.are.equal("  ab", fmt.pad("ab", 4, "right"))
  end)
end)

-- Python's XML parser must accept every chart.
local function assert_xml(svg)
  local path = proc.tempfile(svg, ".svg")
  local status, _, err = proc.sh("python3 -c 'import sys, xml.etree.ElementTree as E; E.parse(sys.argv[1])' "
    .. q(path))
  os.remove(path)
  assert.are.equal(0, status, err)
end

describe("po.dashboard.chart", function()
  local chart = dashboard.chart

  it("draws a line chart with axes, ticks, a legend and escaped labels", function()
    local svg = chart.line {
      title = EVIL, x_label = "cycle", y_label = "a & b",
      series = { { name = "best", y = { 1, 2, 3, 2.5 } }, { name = "<i>score</i>", y = { 0.5, 1, 2, 3 } } },
    }
    assert_xml(svg)
    assert.truthy(svg:find("<svg", 1, true))
    assert.falsy(svg:find(EVIL, 1, true))
    assert.falsy(svg:find("<i>", 1, true))
    assert.truthy(svg:find("&lt;script&gt;", 1, true))
    assert.truthy(svg:find("a &amp; b", 1, true))
    local paths = select(2, svg:gsub("<path ", ""))
    assert.are.equal(2, paths)
    assert.truthy(svg:find(">3<", 1, true)) -- the top tick, written as the shortest number
  end)

  it("picks nice ticks", function()
    local lo, hi, step = chart.ticks(0.13, 9.7, 5)
    assert.are.equal(0, lo)
    assert.are.equal(10, hi)
    assert.are.equal(2, step)
    lo, hi, step = chart.ticks(5, 5)
    assert.is_true(lo < 5 and hi > 5 and step > 0)
  end)

  it("leaves gaps for missing values and keeps the extremes of long series", function()
    local svg = chart.line { y = { 1, 2, nil, 4, 5 }, points = false }
    local d = svg:match('<path d="([^"]*)"')
    assert.are.equal(2, select(2, d:gsub("M", "")))
    local ys = {}
    for i = 1, 10000 do
      ys[i] = math.sin(i / 50)
    end
    ys[5000] = 40 -- one spike must survive the thinning
    svg = chart.line { y = ys, y_label = "v" }
    assert_xml(svg)
    assert.truthy(#svg < 120000)
    assert.truthy(svg:find(">40<", 1, true))
    local top = math.huge
    for y in svg:match('<path d="([^"]*)"'):gmatch("[ML][%d.]+ ([%d.]+)") do
      top = math.min(top, tonumber(y))
    end
    assert.truthy(top < 40, "the spike reaches the top of the plot")
  end)

  it("thins a long series column by column, keeping each column's extremes and the gaps", function()
    local ys = {}
    for i = 1, 10000 do
      ys[i] = 10 + math.sin(i / 300)
    end
    ys[2001], ys[2002] = 30, -10 -- a spike then a dip, in one column
    ys[7002], ys[7001] = 30, -10 -- a dip then a spike
    for i = 4000, 4200 do
      ys[i] = nil -- a gap
    end
    ys[6000] = 0 / 0
    local svg = chart.line { y = ys, y_min = -10, y_max = 30, points = false }
    assert_xml(svg)
    local d = svg:match('<path d="([^"]*)"')
    assert.truthy(select(2, d:gsub("M", "")) >= 2, "the gap breaks the line")
    assert.is_nil(d:find("nan", 1, true))
    local top, bottom = {}, {}
    local lo, hi = math.huge, -math.huge
    for y in d:gmatch("[ML][%d.]+ ([%d.]+)") do
      lo, hi = math.min(lo, tonumber(y)), math.max(hi, tonumber(y))
    end
    for x, y in d:gmatch("[ML]([%d.]+) ([%d.]+)") do
      if tonumber(y) == lo then
        top[#top + 1] = tonumber(x)
      elseif tonumber(y) == hi then
        bottom[#bottom + 1] = tonumber(x)
      end
    end
    -- both spikes reach the top, both dips the bottom, and x never goes back
    assert.are.equal(2, #top)
    assert.are.equal(2, #bottom)
    local last = -math.huge
    for x in d:gmatch("[ML]([%d.]+) ") do
      assert.truthy(tonumber(x) >= last)
      last = tonumber(x)
    end
  end)

  it("draws bars, histograms and empty charts", function()
    local svg = chart.bar { title = "b", labels = { "x", EVIL, "z" }, values = { 1, -2, 3 } }
    assert_xml(svg)
    assert.are.equal(3, select(2, svg:gsub("<rect ", "")))
    assert.falsy(svg:find(EVIL, 1, true))
    svg = chart.histogram { values = { 1, 2, 2, 3, 3, 3, 10 } }
    assert_xml(svg)
    local counts, edges, n = chart.bins({ 1, 2, 2, 3, 3, 3, 10, 0 / 0 })
    assert.are.equal(7, n)
    local sum = 0
    for _, c in ipairs(counts) do
      sum = sum + c
    end
    assert.are.equal(7, sum)
    assert.are.equal(#counts + 1, #edges)
    assert.is_true(edges[1] <= 1 and edges[#edges] >= 10)
    for _, empty in ipairs { chart.line { y = {} }, chart.bar {}, chart.histogram { values = {} } } do
      assert_xml(empty)
      assert.truthy(empty:find("no data", 1, true))
    end
  end)

  it("raises on a misspelt option", function()
    assert.has_error(function()
      chart.line { titel = "x" }
    end, "po.dashboard.chart.line: unknown option 'titel'")
  end)
end)

describe("po.dashboard sources", function()
  it("takes a list of records, {cycles, statistics} and a statistics table", function()
    local d = dashboard.new(cycles(20))
    local data = assert(d:data())
    assert.are.equal("cycles", data.source.kind)
    assert.are.equal(20, #data.source.cycles)
    local o = data.source.statistics.overall_stats
    assert.are.equal(20, o.total_cycles)
    assert.are.equal(18, o.successful_cycles)
    assert.are.equal(2, o.failed_cycles)

    local stats = { overall_stats = { total_cycles = 7, successful_cycles = 7, success_rate = 1 } }
    data = assert(dashboard.new(stats):data())
    assert.are.equal("statistics", data.source.kind)
    assert.are.equal(7, data.source.statistics.overall_stats.total_cycles)
    assert.are.equal(0, data.source.statistics.cache_stats.hit_rate) -- filled with zeros
    local text = dashboard.new(stats):render("text")
    assert.truthy(text:find("Cycles%s+7"))

    data = assert(dashboard.new({ cycles = cycles(3), statistics = stats }):data())
    assert.are.equal(3, #data.source.cycles)
    assert.are.equal(7, data.source.statistics.overall_stats.total_cycles)
  end)

  it("computes the collector's statistics from records", function()
    local list = {
      { cycle_id = "a", duration = 1, success = true, end_time = 1, llm_calls = 4, llm_cache_hits = 1,
        llm_cache_misses = 3, tokens_saved = 20, cost_saved = 0.1, validation_time = 2, validation_count = 1 },
      { cycle_id = "b", duration = 3, success = true, end_time = 2, llm_calls = 0, validation_time = 4,
        validation_count = 2 },
      { cycle_id = "c", duration = 9, success = false, end_time = 3 },
      { cycle_id = "d", llm_calls = 5 }, -- still running
    }
    local s = require("poengine.dashboard.source").statistics(list)
    assert.are.equal(2, s.cycle_stats.mean)
    assert.are.equal(2, s.cycle_stats.median)
    assert.are.near(math.sqrt(2), s.cycle_stats.stdev, 1e-12)
    assert.are.equal(3, s.overall_stats.total_cycles)
    assert.are.equal(1, s.overall_stats.active_cycles)
    assert.are.equal(0.25, s.cache_stats.hit_rate)
    assert.are.equal(25, s.cache_stats.api_reduction)
    assert.are.equal(20, s.cache_stats.tokens_saved)
    assert.are.near(0.1, s.cache_stats.cost_saved, 1e-12)
    assert.are.equal(3, s.validation_stats.mean_validation_time)
    assert.are.equal(3, s.validation_stats.total_validations)
  end)

  it("gives a list of a collector's records the collector's own statistics", function()
    local col = po.metrics.collector { name = "spec-stats" }
    for i = 1, 37 do
      local id = "c" .. i
      col:start_cycle(id)
      for k = 1, i % 4 do
        col:record_llm_call(id, { cache_hit = k % 2 == 0, tokens_in = 10 * k, tokens_out = k, cost = 0.001 * k })
      end
      if i % 3 > 0 then
        col:record_validation(id, i * 0.01, i % 3)
      end
      col:record_file_operation(id, i % 2)
      col:end_cycle(id, i % 5 ~= 0)
    end
    local list = {}
    for r in col:cycles() do
      list[#list + 1] = r
    end
    local ours = require("poengine.dashboard.source").statistics(list)
    local theirs = col:statistics()
    for group, values in pairs(theirs) do
      for k, v in pairs(values) do
        assert.are.near(v, ours[group][k], 1e-12, group .. "." .. k)
      end
    end
  end)

  it("raises for what cannot be a source, and fails at render for a missing store", function()
    assert.has_error(function()
      dashboard.new(42)
    end)
    local d = dashboard.new("/nonexistent/store")
    local text, err, code = d:render("text")
    assert.is_nil(text)
    assert.are.equal("ENOENT", code)
    assert.truthy(err:find("/nonexistent/store", 1, true))
  end)
end)

describe("po.dashboard formats", function()
  it("render an empty source and a one-cycle source in every format", function()
    local listed = {}
    for _, f in ipairs(dashboard.formats()) do
      listed[f] = true
    end
    for _, f in ipairs(BUILTIN) do
      assert.is_true(listed[f], f)
    end
    -- What each format must say about n cycles (0 or 1; the one is "cycle-1",
    -- a success).
    local says = {
      text = function(out, n)
        assert.truthy(out:find("^poengine dashboard"))
        assert.truthy(out:find("\194\183 " .. n .. " cycles?\n"))
        assert.truthy(out:find("Cycles%s+" .. n .. "%s"))
        assert.are.equal(n == 0, out:find("(no cycles yet)", 1, true) ~= nil)
        assert.are.equal(n == 1, out:find("cycle-1", 1, true) ~= nil)
      end,
      markdown = function(out, n)
        assert.truthy(out:find("^# poengine dashboard\n"))
        assert.truthy(out:find("\194\183 " .. n .. " cycles?%.\n"))
        assert.truthy(out:find("| **Cycles** | " .. n .. " |", 1, true))
        assert.are.equal(n == 0, out:find("_no cycles yet_", 1, true) ~= nil)
        assert.are.equal(n == 1, out:find("cycle-1", 1, true) ~= nil)
      end,
      json = function(out, n)
        local doc = assert(po.json.decode(out))
        assert.are.equal(n, doc.sections.overall.total_cycles)
        assert.are.equal(n, #doc.sections.recent.cycles)
        if n == 1 then
          assert.are.equal("cycle-1", doc.sections.recent.cycles[1].cycle_id)
        end
      end,
      csv = function(out, n)
        local rows = lines(out:gsub("\r?\n$", ""))
        assert.are.equal(1 + n, #rows)
        assert.truthy(rows[1]:find("^cycle_id,start_time,"))
        if n == 1 then
          assert.truthy(rows[2]:find("^cycle%-1,"))
        end
      end,
      html = function(out, n)
        assert.truthy(out:find("^<!DOCTYPE html>"))
        assert.truthy(out:find("</html>%s*$"))
        assert.are.equal(n == 1, out:find("cycle-1", 1, true) ~= nil)
      end,
      prometheus = function(out, n)
        assert.truthy(out:find('\npo_dashboard_cycles{status="successful"} ' .. n .. "\n", 1, true))
        assert.truthy(out:find('\npo_dashboard_cycles{status="failed"} 0\n', 1, true))
      end,
    }
    for _, case in ipairs { { {}, 0 }, { cycles(1), 1 }, { { overall_stats = {} }, 0 } } do
      for _, f in ipairs(BUILTIN) do
        local out = assert(dashboard.new(case[1]):render(f))
        says[f](out, case[2])
      end
    end
  end)

  it("text fits 80 columns whatever the data", function()
    local list = cycles(30, { providers = true })
    list[30].cycle_id = string.rep("very-long-cycle-id-", 10)
    list[30].error = string.rep("a long error message ", 20) .. "\n\27[2Jtraceback"
    list[29].metadata = { note = string.rep("x", 300) }
    local text = dashboard.new(list, { title = string.rep("T", 200) }):render("text")
    for i, l in ipairs(lines(text)) do
      assert.is_true(fmt.width(l) <= 80, "line " .. i .. " is " .. fmt.width(l) .. " columns: " .. l)
    end
    assert.falsy(text:find("\27", 1, true))
    assert.truthy(text:find("Recent cycles", 1, true))
    local narrow = dashboard.new(list, { width = 60 }):render("text")
    for _, l in ipairs(lines(narrow)) do
      assert.is_true(fmt.width(l) <= 60, l)
    end
  end)

  it("markdown tables keep their columns whatever the data", function()
    local list = cycles(5)
    list[5].cycle_id = "a|b\nc `d` # e"
    list[5].error = "| broken | table |\n---|---"
    list[4].cycle_id = "- item"
    local md = dashboard.new(list):render("markdown")
    local in_table, width = false, nil
    for _, l in ipairs(lines(md)) do
      if l:sub(1, 1) == "|" then
        -- Cells are separated by pipes not preceded by a backslash.
        local cells = select(2, l:gsub("\\|", ""):gsub("|", "|")) - 1
        if not in_table then
          in_table, width = true, cells
        else
          assert.are.equal(width, cells, l)
        end
      else
        in_table = false
        assert.falsy(l:find("^%s*[-#>]%s") and not l:find("^#+ "), "a data line starts a block: " .. l)
      end
    end
    assert.truthy(md:find("a\\|b c \\`d\\` # e", 1, true))
  end)

  it("csv has one row per cycle that a real CSV parser reads back", function()
    local list = cycles(4)
    list[2].metadata = { note = 'comma, "quote"\nand newline', n = 2 }
    list[3].error = 'failed: "x", then\r\ny'
    list[4].cycle_id = "id,with,commas"
    local csv = dashboard.new(list):render("csv")
    assert.truthy(csv:find("\r\n", 1, true))
    local path = proc.tempfile(csv, ".csv")
    local status, out, err = proc.sh("python3 -c " .. q([[
import csv, json, sys
rows = list(csv.reader(open(sys.argv[1], newline="")))
print(json.dumps(rows))
]]) .. " " .. q(path))
    os.remove(path)
    assert.are.equal(0, status, err)
    local rows = assert(po.json.decode(out))
    assert.are.equal(5, #rows)
    local header = rows[1]
    assert.are.equal("cycle_id", header[1])
    local col = {}
    for i, name in ipairs(header) do
      col[name] = i
    end
    for i = 2, 5 do
      assert.are.equal(#header, #rows[i])
    end
    assert.are.equal("id,with,commas", rows[5][col.cycle_id])
    assert.are.equal('failed: "x", then\r\ny', rows[4][col.error])
    local meta = assert(po.json.decode(rows[3][col.metadata]))
    assert.are.equal('comma, "quote"\nand newline', meta.note)
    assert.are.equal(tostring(list[1].duration), rows[2][col.duration])
    assert.are.equal("2026-01-01T00:00:00.000Z", rows[2][col.start_time])
    assert.are.equal("true", rows[2][col.success])
  end)

  it("json holds every section's data and reads back", function()
    local d = dashboard.new(cycles(12, { providers = true }), { recent = 3 })
    local doc = assert(po.json.decode(d:render("json")))
    -- Every section but the judging ones, which need a run's event log.
    local want = {}
    for _, name in ipairs(dashboard.sections()) do
      if not require("poengine.dashboard.judge").names_set[name] then
        want[#want + 1] = name
      end
    end
    assert.are.same(want, doc.order)
    assert.are.equal(12, doc.sections.overall.total_cycles)
    assert.are.equal(3, #doc.sections.recent.cycles)
    assert.are.equal("cycle-12", doc.sections.recent.cycles[1].cycle_id)
    assert.are.equal("openai", doc.sections.llm.providers[1].name)
    assert.are.equal(1, doc.sections.validation.validators[1].runs / 12)
    assert.truthy(doc.generated_at:match("^%d%d%d%d%-%d%d%-%d%dT%d%d:%d%d:%d%d%.%d%d%dZ$"))
  end)

  it("html is one page with inline CSS and SVG, no script, nothing external, data escaped", function()
    local list = cycles(40, { providers = true })
    list[40].cycle_id = EVIL
    list[40].metadata = { x = EVIL }
    list[39].error = '"><img src=x onerror=alert(1)>'
    local html = dashboard.new(list, { title = EVIL }):render("html")
    assert.truthy(html:find("^<!DOCTYPE html>"))
    assert.falsy(html:find(EVIL, 1, true))
    assert.falsy(html:find("<img", 1, true))
    assert.falsy(html:find("<script", 1, true))
    assert.falsy(html:find("<link", 1, true))
    assert.falsy(html:find("https?://[^\"]*[^g]\"") and not html:find("http://www.w3.org/2000/svg", 1, true))
    assert.truthy(html:find("&lt;script&gt;alert(1)&lt;/script&gt;", 1, true))
    assert.truthy(html:find("prefers-color-scheme:dark", 1, true))
    assert.truthy(html:find("Content-Security-Policy", 1, true))
    assert.are.equal(4, select(2, html:gsub("<svg ", "")))
    for url in html:gmatch("https?://[^\"'%s)]+") do
      assert.are.equal("http://www.w3.org/2000/svg", url) -- the SVG namespace is not fetched
    end
  end)
end)

describe("po.dashboard extension API", function()
  local saved_order = dashboard.sections()

  after_each(function()
    -- Put the built-in overall section back if a test replaced it.
    for _, spec in ipairs(require("poengine.dashboard.sections").list) do
      dashboard.section(spec)
    end
  end)

  it("adds a section drawn from its data when it has no renderers", function()
    dashboard.section {
      name = "spec_custom",
      title = "Custom",
      data = function(src)
        return { cycles_seen = #src.cycles, label = EVIL, rows = { { a = 1, b = "x|y" }, { a = 2, b = "z" } } }
      end,
    }
    local d = dashboard.new(cycles(3), { sections = { "spec_custom", "overall" } })
    local text = d:render("text")
    assert.truthy(text:find("Custom", 1, true))
    assert.truthy(text:find("cycles seen%s+3"))
    assert.truthy(text:find("Custom", 1, true) < text:find("Overall", 1, true))
    local md = d:render("markdown")
    assert.truthy(md:find("| 1 | x\\|y |", 1, true))
    local html = d:render("html")
    assert.falsy(html:find(EVIL, 1, true))
    local doc = po.json.decode(d:render("json"))
    assert.are.equal(3, doc.sections.spec_custom.cycles_seen)
    assert.are.equal(#saved_order + 1, #dashboard.sections())
  end)

  it("replaces a section in place and uses its own renderers", function()
    local before = dashboard.sections()
    dashboard.section {
      name = "overall",
      title = "Mine",
      data = function()
        return { n = 1 }
      end,
      text = function(data, ctx)
        return "  custom text " .. data.n .. " " .. ctx.width
      end,
      html = function(data, ctx)
        return "<p>" .. ctx.escape.html(EVIL) .. "</p>"
      end,
    }
    assert.are.same(before, dashboard.sections())
    assert.are.equal("overall", before[5]) -- after the four judging sections
    local d = dashboard.new(cycles(2), { sections = { "overall" } })
    assert.truthy(d:render("text"):find("custom text 1 80", 1, true))
    assert.truthy(d:render("html"):find("<p>&lt;script&gt;", 1, true))
    assert.truthy(d:render("markdown"):find("| **n** | 1 |", 1, true))
  end)

  it("shows a failing section as a note and keeps the others", function()
    dashboard.section {
      name = "spec_broken",
      data = function()
        error("no such " .. EVIL)
      end,
    }
    local d = dashboard.new(cycles(2), { sections = { "overall", "spec_broken" } })
    local text = d:render("text")
    assert.truthy(text:find("section 'spec_broken' failed:", 1, true))
    assert.truthy(text:find("Cycles", 1, true))
    local html = d:render("html")
    assert.falsy(html:find(EVIL, 1, true))
    local doc = po.json.decode(d:render("json"))
    assert.truthy(doc.sections.spec_broken.error:find("no such", 1, true))
    assert.are.equal(2, doc.sections.overall.total_cycles)
  end)

  it("adds a format, selected by name and by extension", function()
    dashboard.format {
      name = "spec_tsv",
      extensions = { "tsv" },
      render = function(_, data)
        local out = {}
        for _, r in ipairs(data.source.cycles) do
          out[#out + 1] = tostring(r.cycle_id) .. "\t" .. tostring(r.duration)
        end
        return table.concat(out, "\n")
      end,
    }
    local d = dashboard.new(cycles(2))
    assert.are.equal("cycle-1\t1.5\ncycle-2\t2", d:render("spec_tsv"))
    local dir = tempdir()
    assert.is_true(d:write(dir .. "/out.tsv"))
    assert.are.equal("cycle-1\t1.5\ncycle-2\t2", read(dir .. "/out.tsv"))
    assert.is_true(d:write(dir .. "/page.html"))
    assert.truthy(read(dir .. "/page.html"):find("^<!DOCTYPE html>"))
    assert.is_true(d:write(dir .. "/x.out", "markdown"))
    assert.truthy(read(dir .. "/x.out"):find("^# poengine dashboard"))
    local ok, err, code = d:write(dir .. "/missing/dir/x.md")
    assert.is_nil(ok)
    assert.are.equal("EIO", code)
    assert.truthy(err:find("missing", 1, true))
    os.execute("rm -rf " .. q(dir))
  end)

  it("raises on programmer errors, naming the function", function()
    assert.has_error(function()
      dashboard.section { name = "x", data = function() end, titel = "y" }
    end, "po.dashboard.section: unknown option 'titel'")
    assert.has_error(function()
      dashboard.section { name = "bad name", data = function() end }
    end)
    assert.has_error(function()
      dashboard.section { name = "x" }
    end, "po.dashboard.section: data must be a function(src, options), got nil")
    assert.has_error(function()
      dashboard.format { name = "x" }
    end, "po.dashboard.format: render must be a function(dashboard, data), got nil")
    assert.has_error(function()
      dashboard.new({}, { sections = { "nope" } })
    end)
    assert.has_error(function()
      dashboard.new({}, { section = {} })
    end, "po.dashboard.new: unknown option 'section'")
    assert.has_error(function()
      dashboard.new({}):render("nope")
    end)
    assert.has_error(function()
      dashboard.new({}):write("/tmp/x.unknownext")
    end)
  end)
end)

-- A real collector with n cycles, in memory or in the store at path.
local function record_cycles(col, n, prefix)
  prefix = prefix or "c"
  for i = 1, n do
    local id = prefix .. i
    col:start_cycle(id, { strategy = i % 2 == 0 and "greedy" or "beam", note = EVIL })
    col:record_llm_call(id, { cache_hit = i % 3 == 0, tokens_in = 100, tokens_out = 20, cost = 0.002,
      latency = 0.1 * i, provider = i % 2 == 0 and "openai" or "anthropic" })
    col:record_validation(id, 0.05 * i, 2)
    col:record_file_operation(id, 1)
    col:record_score(id, i / n, i / n)
    col:end_cycle(id, i % 4 ~= 0, i % 4 == 0 and ("failed: " .. EVIL) or nil)
  end
end

local function promtool(text)
  local path = proc.tempfile(text, ".prom")
  local status, out, err = proc.sh("promtool check metrics < " .. q(path))
  os.remove(path)
  return status, out .. err
end

describe("po.dashboard over real collectors", function()
  it("renders an empty and a one-cycle collector in every format", function()
    for n = 0, 1 do
      local col = po.metrics.collector { name = "spec-empty-" .. n }
      record_cycles(col, n)
      for _, f in ipairs(BUILTIN) do
        local out, err = dashboard.new(col):render(f)
        assert.is_string(out, err)
        assert.truthy(#out > 0)
      end
      local doc = po.json.decode(dashboard.new(col):render("json"))
      assert.are.equal(n, doc.sections.overall.total_cycles)
      local csv = dashboard.new(col):render("csv")
      assert.are.equal(n + 1, select(2, csv:gsub("\r\n", "")))
    end
  end)

  it("shows a live collector's figures, per provider too", function()
    local col = po.metrics.collector { name = "spec-live" }
    record_cycles(col, 12)
    local data = assert(dashboard.new(col):data())
    assert.are.equal("collector", data.source.kind)
    local by = {}
    for _, s in ipairs(data.sections) do
      by[s.name] = s.data
    end
    assert.are.equal(12, by.overall.total_cycles)
    assert.are.equal(9, by.overall.successful_cycles)
    assert.are.equal(12, by.llm.total_llm_calls)
    assert.are.equal(4, by.llm.cache_hits)
    assert.are.equal(2, #by.llm.providers)
    local anthropic = by.llm.providers[1]
    assert.are.equal("anthropic", anthropic.name)
    assert.are.equal(6, anthropic.calls)
    assert.are.near(0.6, anthropic.mean_latency, 1e-9) -- 0.1, 0.3, ... 1.1 seconds
    assert.are.equal(1, by.progress.best_score)
    assert.are.equal("c12", by.progress.best_cycle)
    assert.are.equal("c12", by.recent.cycles[1].cycle_id)
    local text = dashboard.new(col):render("text")
    assert.truthy(text:find("anthropic", 1, true))
  end)

  it("reads a store path, fresh at every render, written by another process", function()
    local dir = proc.tempdir()
    local col = assert(po.metrics.collector { path = dir, name = "spec-store" })
    record_cycles(col, 5)
    col:close()
    local d = dashboard.new(dir)
    local doc = assert(po.json.decode(assert(d:render("json"))))
    assert.are.equal("store", doc.source.kind)
    assert.are.equal(5, doc.sections.overall.total_cycles)
    assert.are.equal(dir, doc.source.label)
    -- Another process appends three cycles; the same dashboard sees them.
    local script = proc.tempfile(([[
      local col = assert(po.metrics.collector { path = %q })
      for i = 1, 3 do
        col:start_cycle("more" .. i)
        col:end_cycle("more" .. i, true)
      end
      col:close()
    ]]):format(dir), ".lua")
    local status, _, err = proc.poengine(q(script))
    os.remove(script)
    assert.are.equal(0, status, err)
    doc = po.json.decode(d:render("json"))
    assert.are.equal(8, doc.sections.overall.total_cycles)
    assert.are.equal("more3", doc.sections.recent.cycles[1].cycle_id)
    local csv = d:render("csv")
    assert.are.equal(9, select(2, csv:gsub("\r\n", "")))
    proc.rmdir(dir)
  end)

  it("writes Prometheus text that promtool accepts, for every kind of source", function()
    local col = po.metrics.collector { name = "spec-prom\"quoted\\" }
    record_cycles(col, 6)
    local dir = proc.tempdir()
    local stored = assert(po.metrics.collector { path = dir })
    record_cycles(stored, 4)
    stored:close()
    local sources = { col, dir, cycles(10), {}, { overall_stats = { total_cycles = 3 } } }
    for i, src in ipairs(sources) do
      local text = assert(dashboard.new(src):render("prometheus"))
      local status, out = promtool(text)
      assert.are.equal(0, status, "source " .. i .. ": " .. out .. "\n" .. text)
    end
    local text = dashboard.new(col):render("prometheus")
    assert.truthy(text:find('po_dashboard_cycles{status="successful"} 5', 1, true))
    assert.truthy(text:find('po_dashboard_cycles{status="failed"} 1', 1, true))
    assert.truthy(text:find("\npo_cycles_total{", 1, true)) -- the live registry follows
    text = dashboard.new(dir):render("prometheus")
    assert.truthy(text:find('po_dashboard_cycles{status="successful"} 3', 1, true))
    assert.truthy(text:find('po_dashboard_source_info{kind="store",source="' .. dir .. '"} 1', 1, true))
    assert.falsy(text:find("po_cycles_total", 1, true)) -- a store has no live registry
    proc.rmdir(dir)
  end)

  it("shows po.profile's report", function()
    local slow = po.profile("spec.dashboard.work", function(x)
      return x * 2
    end)
    for i = 1, 5 do
      slow(i)
    end
    local doc = po.json.decode(dashboard.new({}, { sections = { "profile" } }):render("json"))
    local found
    for _, f in ipairs(doc.sections.profile.functions) do
      if f.name == "spec.dashboard.work" then
        found = f
      end
    end
    assert.truthy(found)
    assert.are.equal(5, found.calls)
    assert.are.equal(0, found.errors)
    assert.truthy(dashboard.new({}, { sections = { "profile" } }):render("text"):find("spec.dashboard.work", 1, true))
  end)
end)
