-- The html dashboard in a real browser: Debian's headless Chromium, driven
-- over the DevTools protocol by tests/tools/browser.py. The page must load
-- with no console message, exception or dialog, show its charts, and show
-- hostile data as text.
local po = require "poengine"
local proc = require "tests.tools.proc"
local q = proc.quote

local EVIL = "<script>alert(1)</script>"

local function browse(path, evals, dark)
  local args = { "python3", "tests/tools/browser.py", q(path) }
  if dark then
    args[#args + 1] = "--dark"
  end
  for name, expr in pairs(evals or {}) do
    args[#args + 1] = "--eval " .. q(name .. "=" .. expr)
  end
  local status, out, err = proc.sh(table.concat(args, " "))
  assert.are.equal(0, status, err)
  return assert(po.json.decode(out))
end

local function hostile_cycles(n)
  local list = {}
  for i = 1, n do
    list[i] = {
      cycle_id = "c" .. i, start_time = 1767225600 + i * 10, end_time = 1767225605 + i * 10, duration = 5 + i % 3,
      llm_calls = 3, llm_cache_hits = i % 4, llm_cache_misses = 3 - i % 4, tokens_in = 100, tokens_out = 50,
      cost = 0.01, validation_time = 1 + i % 5, validation_count = 2, file_operations = 1, success = i % 5 ~= 0,
      score = i / n, best_score = i / n, metadata = { note = EVIL },
      providers = { [EVIL] = { calls = 3, cache_hits = i % 4, latency = 0.2 } },
      validators = { ["<b>lint</b>"] = { runs = 1, passed = true, duration = 0.5 } },
    }
  end
  list[n].cycle_id = EVIL
  list[n].error = EVIL .. '"><img src=x onerror=alert(2)>'
  list[n].success = false
  return list
end

local function page(src, opts)
  local path = os.tmpname() .. ".html"
  assert(po.dashboard.new(src, opts):write(path))
  return path
end

local DOM = {
  svg = [[document.querySelectorAll("svg").length]],
  drawn = [[[...document.querySelectorAll("svg")].every(s => s.querySelector("path, rect:not([height='4'])"))]],
  scripts = [[document.querySelectorAll("script").length]],
  imgs = [[document.querySelectorAll("img").length]],
  bold = [[document.querySelectorAll("main b").length]],
  sections = [[document.querySelectorAll("section").length]],
  title = [[document.title]],
  recent = [[document.querySelector("#section-recent").textContent]],
  bg = [[getComputedStyle(document.documentElement).backgroundColor]],
  fg = [[getComputedStyle(document.body).color]],
  resources = [[performance.getEntriesByType("resource").length]],
}

describe("the html dashboard in headless Chromium", function()
  it("loads cleanly, draws its charts and shows hostile data as text", function()
    local path = page(hostile_cycles(60), { title = EVIL })
    local r = browse(path, DOM)
    os.remove(path)
    assert.are.same({}, r.console)
    assert.are.same({}, r.exceptions)
    assert.are.same({}, r.dialogs)
    local v = r.results
    assert.are.equal(4, v.svg)
    assert.is_true(v.drawn) -- every chart has a line or bars
    assert.are.equal(0, v.scripts)
    assert.are.equal(0, v.imgs)
    assert.are.equal(0, v.bold)
    assert.are.equal(0, v.resources)
    -- Every section but the four judging ones (no event log here), drawn.
    assert.are.equal(#po.dashboard.sections() - 4, v.sections)
    assert.are.equal(EVIL, v.title)
    assert.truthy(v.recent:find(EVIL, 1, true))
    assert.truthy(v.recent:find('"><img src=x onerror=alert(2)>', 1, true))
  end)

  it("shows the run section: the final check said plainly, the accepted chain, hostile changes as text", function()
    local cycles = hostile_cycles(6)
    for i, r in ipairs(cycles) do
      r.metadata = { cycle = i, direction = "min", outcomes = { proposed = 4, unusable = 1, failed = { [EVIL] = 1 },
        slower = 1, same = 0, faster = 1 } }
    end
    local run = { direction = "min", chain_speedup = 3, final = { verdict = "same", speedup = 1.01, ci_low = 0.97,
      ci_high = 1.05 }, warning = "the final side-by-side check does not confirm the improvement",
      accepted = { { cycle = 2, id = "c2.1", change = EVIL, speedup = 3, ci_low = 2.8, ci_high = 3.2,
        verdict = "faster" } } }
    local path = page({ cycles = cycles, run = run })
    local r = browse(path, {
      run = [[document.querySelector("#section-run").textContent]],
      tables = [[document.querySelectorAll("#section-run table").length]],
      rows = [[document.querySelectorAll("#section-run tbody tr").length]],
      scripts = DOM.scripts,
    }, true)
    os.remove(path)
    assert.are.same({}, r.console)
    assert.are.same({}, r.exceptions)
    assert.are.same({}, r.dialogs)
    local v = r.results
    assert.are.equal(0, v.scripts)
    assert.are.equal(2, v.tables)
    assert.are.equal(1 + 6, v.rows)
    assert.truthy(v.run:find("NOT CONFIRMED: same", 1, true))
    assert.truthy(v.run:find("1.01x [0.97, 1.05]", 1, true))
    assert.truthy(v.run:find("does not confirm the improvement", 1, true))
    assert.truthy(v.run:find(EVIL, 1, true))
  end)

  it("shows every figure of a tile whole, small scores included", function()
    -- Scores like a run that times seconds: 0.0024…; as many significant
    -- digits as the text format gives, and never cut by an ellipsis.
    local cycles = {}
    for i = 1, 12 do
      cycles[i] = { cycle_id = "c" .. i, start_time = 1767225600 + i * 10, end_time = 1767225605 + i * 10,
        duration = 5, llm_calls = 123456, tokens_in = 987654321, tokens_out = 123456789, cost = 1234.5678,
        validation_time = 1, validation_count = 2, success = true,
        score = 0.0024185839 + i * 1e-7, best_score = 0.0024185839 }
    end
    local path = page(cycles)
    local r = browse(path, {
      clipped = [[JSON.stringify([...document.querySelectorAll(".tile .v, .tile .k, .tile .hint")]
        .filter(e => e.scrollWidth > e.clientWidth).map(e => e.textContent))]],
      best = [[[...document.querySelectorAll(".tile")].map(t => t.textContent).join("|")]],
    })
    os.remove(path)
    assert.are.equal("[]", r.results.clipped)
    assert.truthy(r.results.best:find("0.002419", 1, true), r.results.best)
  end)

  it("follows prefers-color-scheme: light and dark differ", function()
    local path = page(hostile_cycles(5))
    local light = browse(path, DOM).results
    local dark = browse(path, DOM, true)
    os.remove(path)
    assert.are.same({}, dark.console)
    assert.are_not.equal(light.bg, dark.results.bg)
    assert.are_not.equal(light.fg, dark.results.fg)
    -- Dark means a dark background with light text.
    local function lum(rgb)
      local r, g, b = rgb:match("(%d+), (%d+), (%d+)")
      return r + g + b
    end
    assert.truthy(lum(dark.results.bg) < 150 and lum(dark.results.fg) > 450)
    assert.truthy(lum(light.bg) > 600 and lum(light.fg) < 200)
  end)

  it("loads cleanly for an empty source and a single cycle", function()
    for _, src in ipairs { {}, { hostile_cycles(1)[1] } } do
      local path = page(src)
      local r = browse(path, DOM)
      os.remove(path)
      assert.are.same({}, r.console)
      assert.are.same({}, r.exceptions)
      assert.are.equal(4, r.results.svg)
    end
  end)

  it("would catch an injected script (the check itself can fail)", function()
    -- The dashboard's own page head with a script slipped into the body: the
    -- page's Content-Security-Policy blocks it and the browser reports that.
    local html = po.dashboard.new({}):render("html"):gsub("<main>", "<main><script>alert(1)</script>")
    local path = proc.tempfile(html, ".html")
    local r = browse(path, DOM)
    os.remove(path)
    assert.are.same({}, r.dialogs)
    assert.are.equal(1, r.results.scripts)
    assert.are.equal(1, #r.console)
    assert.truthy(r.console[1]:find("Content Security Policy", 1, true))
  end)
end)
