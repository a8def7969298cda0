-- The dashboard for judging an optimizer run: its sections (best,
-- candidates, evolution, outcomes) from hand-made event logs, checked to
-- the character, and from a real optimizer run; the static page and the
-- live page in headless Chromium.
local po = require "poengine"
local proc = require "tests.tools.proc"
local model = require "poengine.runs.model"
local judge = require "poengine.dashboard.judge"
local live = require "poengine.dashboard.live"
local q = proc.quote

local EVIL = "</details><script>alert(1)</script>"

local function write_log(dir, events)
  local f = assert(io.open(dir .. "/events.jsonl", "w"))
  for _, e in ipairs(events) do
    f:write(po.json.encode(e, { sort_keys = true }), "\n")
  end
  f:close()
end

local function read(path)
  local f = assert(io.open(path, "rb"))
  local text = f:read("*a")
  f:close()
  return text
end

-- A run minimising time: cycle 1 accepts c1.1 (parameters); c1.2's diff
-- is hostile and fails the build; c1.3's reply is unusable. Cycle 2,
-- proposed from c1.1, accepts c2.3. The final check says 2.4x [2.2, 2.6].
local function cycle1()
  return {
    { kind = "start", task = "t<b>", method = "search", direction = "min", time = "2026-01-01T00:00:00Z" },
    { kind = "candidate", cycle = 1, candidate = "c1.1", parent = "original", params = { opt = "-O2" },
      verdict = "faster", speedup = 2, ci_low = 1.8, ci_high = 2.2, runs = 9, accepted = true,
      cost = { usd = 0.01, tokens = 100 },
      results = { { name = "build", status = "ok", passed = true, duration = 1.5, errors = {} } } },
    { kind = "candidate", cycle = 1, candidate = "c1.2", parent = "original",
      diff = "--- a/x.c\n+++ b/x.c\n@@ -1,2 +1 @@\n--- old\n-int x;\n+" .. EVIL .. "\n", stage = "build",
      cost = { usd = 0.02, tokens = 150 },
      results = { { name = "build", status = "failed", passed = false, duration = 0.25, errors = { "exited with 2" },
        stderr = "x.c:1: <b>error</b> ```" } } },
    { kind = "candidate", cycle = 1, candidate = "c1.3", parent = "original", malformed = "no code block" },
    { kind = "cycle", cycle = 1, best_score = 0.5, spent = { usd = 0.03, tokens = 250 } },
  }
end

local function min_log()
  local log = cycle1()
  for _, e in ipairs {
    { kind = "candidate", cycle = 2, candidate = "c2.1", parent = "c1.1", params = { opt = "-O3" }, verdict = "slower",
      speedup = 0.9, ci_low = 0.85, ci_high = 0.95 },
    { kind = "candidate", cycle = 2, candidate = "c2.2", parent = "c1.1", params = { opt = "-Os" }, verdict = "same",
      speedup = 1.01 },
    { kind = "candidate", cycle = 2, candidate = "c2.3", parent = "c1.1", params = { opt = "-O2 -flto" },
      verdict = "faster", speedup = 1.25, ci_low = 1.1, ci_high = 1.4, accepted = true },
    { kind = "cycle", cycle = 2, best_score = 0.4, spent = { usd = 0.05, tokens = 400 } },
    { kind = "end", final = { speedup = 2.4, ci_low = 2.2, ci_high = 2.6, verdict = "faster", runs = 9 },
      original_score = 1.2, best_score = 0.4, spent = { usd = 0.05, tokens = 400 } },
  } do
    log[#log + 1] = e
  end
  return log
end

-- A run maximising throughput, finished without a final check: the best
-- over the original comes from the scores, without an interval.
local function max_log()
  return {
    { kind = "start", task = "tput", method = "search", direction = "max", time = "2026-01-01T00:00:00Z" },
    { kind = "candidate", cycle = 1, candidate = "c1.1", parent = "original", params = { threads = 8 },
      verdict = "faster", speedup = 2.5, accepted = true },
    { kind = "candidate", cycle = 1, candidate = "c1.2", parent = "original", params = { threads = 1 },
      verdict = "slower", speedup = 0.5 },
    { kind = "cycle", cycle = 1, best_score = 25 },
    { kind = "end", original_score = 10, best_score = 25 },
  }
end

-- The markdown of the judging sections, without the line that carries the time.
local function markdown(src)
  local text = assert(po.dashboard.new(src, { sections = judge.names }):render("markdown"))
  return (text:gsub("\nGenerated [^\n]*\n", "\n", 1))
end

describe("the judging dashboard", function()
  local dir
  before_each(function()
    dir = proc.tempdir()
  end)
  after_each(function()
    proc.rmdir(dir)
  end)

  it("says how much better the best is, the chain, the tree and the outcomes (min)", function()
    write_log(dir, min_log())
    local md = markdown(dir)
    local function part(from, to)
      local a = assert(md:find(from, 1, true), from)
      local b = to and assert(md:find(to, a, true), to) or #md + 1
      return md:sub(a, b - 1)
    end
    assert.are.equal([[
## Best over the original

| | |
|---|---:|
| **Best over the original** | 2.4x \[2.2, 2.6\] (lower score: better) |
| **Measured by** | final check: faster (the best and the original timed side by side) |
| **Score** | 1.2 → 0.4 (original → best) |
| **Run** | finished, 2 cycles (t&lt;b&gt; · search) |
| **LLM cost** | $0.05 (400 tokens) |

Accepted chain: original → c1.1 (2x \[1.8, 2.2\]) → c2.3 (1.25x \[1.1, 1.4\])

**Accepted candidates**

| cycle | candidate | change | speedup | verdict |
| --- | --- | --- | ---: | --- |
| 1 | c1.1 | opt=-O2 | 2x \[1.8, 2.2\] | faster |
| 2 | c2.3 | opt="-O2 -flto" | 1.25x \[1.1, 1.4\] | faster |

]], part("## Best", "## Candidates"))
    assert.are.equal([[
## Candidates

| cycle | candidate | change | stage | verdict | speedup | cost |
|---:|---|---|---|---|---:|---:|
| 1 | c1.1 | opt=-O2 | timing | faster, accepted | 2x \[1.8, 2.2\] | $0.01 · 100 tokens |
| 1 | c1.2 | x.c +1 -2 | build | failed at build | – | $0.02 · 150 tokens |
| 1 | c1.3 |  | reply | unusable | – | – |
| 2 | c2.1 | opt=-O3 | timing | slower | 0.9x \[0.85, 0.95\] | – |
| 2 | c2.2 | opt=-Os | timing | same | 1.01x | – |
| 2 | c2.3 | opt="-O2 -flto" | timing | faster, accepted | 1.25x \[1.1, 1.4\] | – |

]], part("## Candidates", "<details>"))
    -- The hostile diff stays inside its fence, the summary is escaped, and
    -- an output with a backtick run gets a longer fence.
    assert.are.equal([[
<details><summary>c1.2: failed at build (x.c +1 -2)</summary>

Proposed from original.

```diff
--- a/x.c
+++ b/x.c
@@ -1,2 +1 @@
--- old
-int x;
+</details><script>alert(1)</script>
```

- build: failed, 250 ms — exited with 2

````text
x.c:1: <b>error</b> ```
````

</details>
]], part("<details><summary>c1.2", "\n<details><summary>c1.3"))
    assert.truthy(md:find("<details><summary>c1.3: unusable</summary>\n\nProposed from original.\n\n```text\n"
      .. "no code block\n```\n\n</details>", 1, true))
    assert.truthy(md:find("<details><summary>c2.3: faster, accepted (opt=&quot;-O2 -flto&quot;)</summary>", 1, true))
    assert.are.equal([[
## Evolution

- **original**
  - **c1.1 faster, accepted 2x \[1.8, 2.2\]**
    - c2.1 slower 0.9x \[0.85, 0.95\]
    - c2.2 same 1.01x
    - **c2.3 faster, accepted 1.25x \[1.1, 1.4\]**
  - c1.2 failed at build
  - c1.3 unusable

## Outcomes per cycle

| cycle | proposed | unusable | failed | slower | same | faster |
| ---: | ---: | ---: | --- | ---: | ---: | ---: |
| 1 | 3 | 1 | 1 (build 1) | 0 | 0 | 1 |
| 2 | 3 | 0 | 0 | 1 | 1 | 1 |
]], part("## Evolution"))
  end)

  it("gives the same in json: the tree's parent links and the outcome counts", function()
    write_log(dir, min_log())
    local doc = po.json.decode(assert(po.dashboard.new(dir):render("json")))
    -- A run's dashboard opens on the judging sections; the run section,
    -- which they replace, is left out.
    assert.are.same({ "best", "candidates", "evolution", "outcomes" }, { unpack(doc.order, 1, 4) })
    for _, name in ipairs(doc.order) do
      assert.are_not.equal("run", name)
    end
    local best = doc.sections.best
    assert.are.same({ speedup = 2.4, ci_low = 2.2, ci_high = 2.6, verdict = "faster", source = "final check" }, best.best)
    assert.are.equal("original → c1.1 (2x [1.8, 2.2]) → c2.3 (1.25x [1.1, 1.4])", best.chain_text)
    local parent = {}
    local function walk(node, up)
      parent[node.id] = up
      for _, ch in ipairs(node.children) do
        walk(ch, node.id)
      end
    end
    walk(doc.sections.evolution.tree, nil)
    assert.are.same({ ["c1.1"] = "original", ["c1.2"] = "original", ["c1.3"] = "original", ["c2.1"] = "c1.1",
      ["c2.2"] = "c1.1", ["c2.3"] = "c1.1" }, parent)
    local o = doc.sections.outcomes.cycles
    assert.are.same({ cycle = 1, proposed = 3, unusable = 1, failed = 1, failed_stages = "build 1", slower = 0, same = 0,
      faster = 1 }, o[1])
    assert.are.same({ cycle = 2, proposed = 3, unusable = 0, failed = 0, failed_stages = "", slower = 1, same = 1,
      faster = 1 }, o[2])
    local c = doc.sections.candidates.candidates
    assert.are.equal(6, #c)
    assert.are.equal("--- a/x.c\n+++ b/x.c\n@@ -1,2 +1 @@\n--- old\n-int x;\n+" .. EVIL .. "\n", c[2].diff)
    assert.are.equal("x.c:1: <b>error</b> ```", c[2].results[1].stderr)
  end)

  it("reads a maximised run without a final check from its scores", function()
    write_log(dir, max_log())
    local md = markdown(dir)
    assert.truthy(md:find([[
| **Best over the original** | 2.5x (higher score: better) |
| **Measured by** | cycle scores (no final check yet: no interval) |
| **Score** | 10 → 25 (original → best) |]], 1, true), md)
    assert.truthy(md:find("Accepted chain: original → c1.1 (2.5x)\n", 1, true))
    local text = assert(po.dashboard.new(dir, { sections = { "evolution" } }):render("text"))
    assert.truthy(text:find("\n  - original *\n    - c1.2 slower 0.5x\n    - c1.1 faster, accepted 2.5x *\n", 1, true)
      or text:find("\n  - original *\n    - c1.1 faster, accepted 2.5x *\n    - c1.2 slower 0.5x\n", 1, true), text)
  end)

  it("says NOT CONFIRMED, with the run's warning, when the final check is not faster", function()
    local log = cycle1()
    log[#log + 1] = { kind = "end", final = { speedup = 1.02, ci_low = 0.97, ci_high = 1.08, verdict = "same" },
      original_score = 1.2, best_score = 0.5, warning = "the accepted chain did not hold up <here>" }
    write_log(dir, log)
    local md = markdown(dir)
    assert.truthy(md:find([[
| **Best over the original** | 1.02x \[0.97, 1.08\] (lower score: better) |
| **Measured by** | final check: NOT CONFIRMED (same) (the best and the original timed side by side) |]], 1, true), md)
    assert.truthy(md:find("\nWarning: the accepted chain did not hold up &lt;here&gt;\n", 1, true), md)
  end)

  it("escapes a hostile diff and output in the html page", function()
    write_log(dir, min_log())
    local page = assert(po.dashboard.new(dir):render("html"))
    assert.is_nil(page:find("<script", 1, true))
    assert.truthy(page:find('<span class="add">+&lt;/details&gt;&lt;script&gt;alert(1)&lt;/script&gt;</span>', 1, true))
    -- A removed line that starts with "---" is a removal, not a file's header.
    assert.truthy(page:find('<span class="fh">--- a/x.c</span>\n<span class="fh">+++ b/x.c</span>\n'
      .. '<span class="hunk">@@ -1,2 +1 @@</span>\n<span class="del">--- old</span>\n<span class="del">-int x;</span>', 1, true))
    assert.truthy(page:find("x.c:1: &lt;b&gt;error&lt;/b&gt; ```", 1, true))
    assert.truthy(page:find('<details class="cand failed" id="cand-c1.2">', 1, true))
    -- Without an event log, the judging sections say so when asked for.
    local none = assert(po.dashboard.new({ cycles = {} }, { sections = { "candidates" } }):render("text"))
    assert.truthy(none:find("no optimizer event log in this source", 1, true))
    -- ... and are not shown unasked.
    local doc = po.json.decode(assert(po.dashboard.new({ cycles = {} }):render("json")))
    assert.is_nil(doc.sections.best)
    assert.is_table(doc.sections.run)
  end)

  it("takes a run model as a source", function()
    write_log(dir, min_log())
    local m = assert(model.load(dir))
    assert.are.equal(markdown(dir):gsub("from [^\n]*", ""), (markdown(m):gsub("from [^\n]*", "")))
  end)
end)

describe("the judging dashboard of a real optimizer run", function()
  local work, out
  setup(function()
    work = proc.tempdir()
    out = proc.tempdir()
    assert(po.files.write({ { path = "rounds.txt", content = "20000\n" } }, { root = work })[1].ok)
  end)
  teardown(function()
    proc.rmdir(work)
    proc.rmdir(out)
  end)

  it("shows the run's candidates, chain and outcomes, from the API and the CLI", function()
    local spin = (os.getenv("POENGINE_BUILD_DIR") or (os.getenv("PWD") .. "/build")) .. "/tests/bench_spin"
    local result = assert(po.optimizer.run({
      id = "spec-judge", workdir = work, target_files = { "rounds.txt" }, baseline_params = { rounds = 20000 },
      apply_params = function(params, d)
        assert(po.files.write({ { path = "rounds.txt", content = tostring(params.rounds) .. "\n" } }, { root = d })[1].ok)
      end,
      method = function()
        return { { params = { rounds = 10000 } }, { params = { rounds = 20000 } }, { params = { rounds = 1 } } }
      end,
      validators = { { name = "check", run = { "sh", "-c", "test \"$(cat rounds.txt)\" != 1" } } },
      objective = {
        validator = po.validate.benchmark { name = "spin", argv = { "sh", "-c", spin .. " $(cat rounds.txt)" },
          metric = function(r) return tonumber(r.stdout) end },
        direction = "min", alpha = 0.01, min_effect = 0.05,
      },
      budget = { cycles = 1 },
    }, { output = out, quiet = true }))
    assert.are.equal(1, #result.accepted, result.stopped .. " " .. read(result.events))
    -- The run's store, the run's directory and the collector all bring the event log.
    for _, src in ipairs { result.store, out, result.collector } do
      local doc = po.json.decode(assert(po.dashboard.new(src):render("json")))
      assert.are.same({ "best", "candidates", "evolution", "outcomes" }, { unpack(doc.order, 1, 4) })
      local c = doc.sections.candidates.candidates
      assert.are.equal(3, #c)
      assert.are.same({ "c1.1", "rounds=10000", "timing", "faster, accepted", "original" },
        { c[1].id, c[1].change, c[1].stage, c[1].verdict, c[1].parent })
      assert.are.equal(result.accepted[1].speedup, c[1].speedup)
      assert.are.same({ "c1.3", "rounds=1", "check", "failed at check" }, { c[3].id, c[3].change, c[3].stage, c[3].verdict })
      assert.are.equal("check", c[3].results[1].name)
      assert.are.equal("failed", c[3].results[1].status)
      local best = doc.sections.best
      assert.are.equal(result.final.speedup, best.best.speedup)
      assert.are.equal(result.final.ci_low, best.best.ci_low)
      assert.are.equal("final check", best.best.source)
      assert.are.equal("original → c1.1 (" .. po.dashboard.fmt.speedup(result.accepted[1].speedup,
        result.accepted[1].ci_low, result.accepted[1].ci_high) .. ")", best.chain_text)
      local o = doc.sections.outcomes.cycles[1]
      assert.are.same({ 1, 3, 0, 1, "check 1" }, { o.cycle, o.proposed, o.unusable, o.failed, o.failed_stages })
      assert.are.equal(3, o.proposed)
    end
    -- poengine dashboard --run DIR and --store DIR/store: the judging sections first.
    for _, args in ipairs { "--run " .. q(out), "--store " .. q(out .. "/store") } do
      local file = out .. "/judge.md"
      local status, _, err = proc.poengine("dashboard " .. args .. " -o " .. q(file))
      assert.are.equal(0, status, err)
      local md = read(file)
      local heads = {}
      for h in md:gmatch("\n## ([^\n]+)") do
        heads[#heads + 1] = h
      end
      assert.are.same({ "Best over the original", "Candidates", "Evolution", "Outcomes per cycle", "Overall" },
        { unpack(heads, 1, 5) })
      assert.truthy(md:find("| 1 | c1.3 | rounds=1 | check | failed at check | – | – |", 1, true), md)
    end
  end)
end)

-- Steps for tests/tools/browser.py, in order: { "eval"|"wait", name, expr } or { "sh", command }.
local function browse(url, steps)
  local args = { "python3", "tests/tools/browser.py", q(url) }
  for _, s in ipairs(steps) do
    if s[1] == "sh" then
      args[#args + 1] = "--sh " .. q(s[2])
    else
      args[#args + 1] = "--" .. s[1] .. " " .. q(s[2] .. "=" .. s[3])
    end
  end
  local status, stdout, err = proc.sh(table.concat(args, " "))
  assert.are.equal(0, status, err)
  local r = assert(po.json.decode(stdout))
  assert.are.same({}, r.console)
  assert.are.same({}, r.exceptions)
  assert.are.same({}, r.dialogs)
  return r.results
end

describe("the judging pages in headless Chromium", function()
  local dir
  before_each(function()
    dir = proc.tempdir()
  end)
  after_each(function()
    proc.rmdir(dir)
  end)

  it("opens a candidate on a click and marks the accepted path in the static page", function()
    write_log(dir, min_log())
    local path = dir .. "/page.html"
    assert(po.dashboard.new(dir):write(path))
    local r = browse(path, {
      { "eval", "scripts", [=[document.querySelectorAll("script").length]=] },
      { "eval", "closed", [=[document.getElementById("cand-c1.2").open]=] },
      { "eval", "clicked", [=[document.getElementById("cand-c1.2").querySelector("summary").click(), document.getElementById("cand-c1.2").open]=] },
      { "eval", "diff", [=[document.getElementById("cand-c1.2").querySelector("pre.diff").innerText]=] },
      { "eval", "shown", [=[document.getElementById("cand-c1.2").querySelector("pre.diff").getBoundingClientRect().height > 0]=] },
      { "eval", "path", [=[[...document.querySelectorAll("#section-evolution .on-path")].map(e => e.textContent.split(" ")[0]).join(",")]=] },
      { "eval", "path_border", [=[getComputedStyle(document.querySelector("a.chip.on-path")).borderTopWidth]=] },
      { "eval", "other_border", [=[getComputedStyle(document.querySelector('a.chip[href="#cand-c2.1"]')).borderTopWidth]=] },
      { "eval", "c21_parent", [=[document.querySelector('a.chip[href="#cand-c2.1"]').closest("ul").closest("li").querySelector(".tnode").textContent.split(" ")[0]]=] },
      { "eval", "bars", [=[document.querySelectorAll("#section-outcomes svg rect title").length]=] },
    })
    assert.are.equal(0, r.scripts)
    assert.is_false(r.closed)
    assert.is_true(r.clicked)
    assert.truthy(r.diff:find("+" .. EVIL, 1, true))
    assert.is_true(r.shown)
    assert.are.equal("original,c1.1,c2.3", r.path)
    assert.are.equal("2px", r.path_border)
    assert.are.equal("1px", r.other_border)
    assert.are.equal("c1.1", r.c21_parent)
    assert.are.equal(6, r.bars) -- cycle 1: unusable, failed, faster; cycle 2: slower, same, faster
  end)

  it("updates the live page as cycles finish, without a reload, and reconnects", function()
    -- The page of a run after its first cycle; the second cycle's fragment
    -- is put in place while the page is open.
    write_log(dir, cycle1())
    local m1 = assert(model.load(dir))
    local page = live.page(m1, { events_url = "/events", fragment_url = "/fragment" })
    assert.are.equal(1, select(2, page:gsub("<script>", "")))
    assert.is_nil(page:find("src=", 1, true)) -- nothing loaded from anywhere
    assert.is_nil(page:find('href="http', 1, true))
    assert.truthy(page:find('data-events="/events" data-fragment="/fragment"', 1, true))
    assert(po.write_file(dir .. "/page.html", page))
    assert(po.write_file(dir .. "/fragment.html", live.fragment(m1)))
    write_log(dir, min_log())
    assert(po.write_file(dir .. "/next.html", live.fragment(assert(model.load(dir)))))

    local server = assert(io.popen("exec python3 tests/tools/live_server.py " .. q(dir), "r"))
    local port = server:read("*l")
    assert.truthy(port and port:match("^%d+$"), port)
    local ok, r = pcall(browse, "http://127.0.0.1:" .. port .. "/page", {
      { "eval", "marker", [=[window.__marker = 42]=] },
      { "wait", "live", [=[document.getElementById("live-state").textContent === "live" && document.body.getAttribute("data-updates") === "1"]=] },
      { "eval", "before", [=[!!document.getElementById("cand-c2.1")]=] },
      { "eval", "open", [=[document.getElementById("cand-c1.2").querySelector("summary").click(), document.getElementById("cand-c1.2").open]=] },
      { "sh", "mv " .. q(dir .. "/next.html") .. " " .. q(dir .. "/fragment.html") },
      { "wait", "after", [=[!!document.getElementById("cand-c2.1")]=] },
      { "eval", "kept", [=[window.__marker === 42 && document.getElementById("cand-c1.2").open]=] },
      { "eval", "chain", [=[document.querySelector("#section-best").textContent.includes("original → c1.1 (2x [1.8, 2.2]) → c2.3 (1.25x [1.1, 1.4])")]=] },
      { "eval", "cycles", [=[document.querySelectorAll("#section-outcomes tbody tr").length]=] },
      { "sh", "touch " .. q(dir .. "/down") },
      { "wait", "down", [=[document.getElementById("live-state").textContent === "disconnected"]=] },
      { "sh", "rm " .. q(dir .. "/down") },
      { "wait", "back", [=[document.getElementById("live-state").textContent === "live"]=] },
    })
    assert(io.open(dir .. "/quit", "w")):close()
    server:close()
    assert(ok, r)
    assert.is_false(r.before)
    assert.is_true(r.open)
    assert.is_true(r.after)
    assert.is_true(r.kept) -- the same page (no reload), the opened candidate still open
    assert.is_true(r.chain)
    assert.are.equal(2, r.cycles)
    assert.is_true(r.down)
    assert.is_true(r.back)
  end)
end)
