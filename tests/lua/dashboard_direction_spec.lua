-- Dashboards know the objective's direction: best score, improvement and
-- the best-score line of a minimising run are the lowest figures, of a
-- maximising run the highest, in every format; and the run section shows
-- the final check, the accepted chain and each cycle's outcomes.
local po = require "poengine"

-- Four ended cycles scoring `scores`, one second apart.
local function cycles_of(scores)
  local cycles = {}
  for i, s in ipairs(scores) do
    cycles[i] = { cycle_id = "c" .. i, start_time = 1000 + i, end_time = 1001 + i, duration = 1, success = true,
      score = s }
  end
  return cycles
end

local function board(scores, direction, sections)
  return po.dashboard.new({ cycles = cycles_of(scores), direction = direction }, { sections = sections
    or { "progress" } })
end

-- The section's text, without the dashboard's header (it has the time).
local function section_text(d, fmt_name, from)
  local text = assert(d:render(fmt_name))
  local at = assert(text:find(from, 1, true), from)
  return text:sub(at)
end

-- A minimising run: 10, 8, 9, 2 (best 2 in c4, 5x); a maximising one:
-- 2, 4, 3, 8 (best 8 in c4, 4x). Read the other way round each would have
-- its best in c1 and no improvement.
local MIN, MAX = { 10, 8, 9, 2 }, { 2, 4, 3, 8 }

describe("direction-aware dashboards", function()
  it("json: best, improvement and direction", function()
    local doc = po.json.decode(board(MIN, "min"):render("json"))
    assert.are.same({ direction = "min", scored_cycles = 4, first_score = 10, last_score = 2, best_score = 2,
      best_cycle = "c4", improvements = 2, improvement = 8, improvement_ratio = 5, first_is_original = false },
      doc.sections.progress)
    doc = po.json.decode(board(MAX, "max"):render("json"))
    assert.are.same({ direction = "max", scored_cycles = 4, first_score = 2, last_score = 8, best_score = 8,
      best_cycle = "c4", improvements = 2, improvement = 6, improvement_ratio = 4, first_is_original = false },
      doc.sections.progress)
  end)

  it("without a direction, a higher score is better (as before)", function()
    local doc = po.json.decode(board(MIN, nil):render("json"))
    assert.are.equal("max", doc.sections.progress.direction)
    assert.are.equal(10, doc.sections.progress.best_score)
    assert.are.equal("c1", doc.sections.progress.best_cycle)
    assert.are.equal(0, doc.sections.progress.improvement)
  end)

  it("takes the direction from the cycles' metadata or a collector's run record", function()
    local cycles = cycles_of(MIN)
    cycles[4].metadata = { direction = "min" }
    local doc = po.json.decode(po.dashboard.new(cycles, { sections = { "progress" } }):render("json"))
    assert.are.equal(2, doc.sections.progress.best_score)

    local col = po.metrics.collector { direction = "min" }
    for i, s in ipairs(MIN) do
      col:start_cycle(i)
      col:record_score(i, s)
      col:end_cycle(i, true)
    end
    doc = po.json.decode(po.dashboard.new(col, { sections = { "overall", "progress" } }):render("json"))
    assert.are.equal(2, doc.sections.progress.best_score)
    assert.are.equal(2, doc.sections.overall.best_score)
    assert.are.equal(8, doc.sections.progress.improvement)
  end)

  it("text", function()
    assert.are.equal(table.concat({
      "── Optimization progress ───────────────────────────────────────────────────────",
      "  Best score                   2    Best cycle                  c4",
      "  First score                 10    Last score                   2",
      "  Improvement             8 (5x)    Improvements                 2",
      "  Scored cycles                4    Direction      lower is better",
      "  best score        █▆▆▁  2 – 10",
      "" }, "\n"), section_text(board(MIN, "min"), "text", "── Optimization"))
    assert.are.equal(table.concat({
      "── Optimization progress ───────────────────────────────────────────────────────",
      "  Best score                    8    Best cycle                   c4",
      "  First score                   2    Last score                    8",
      "  Improvement              6 (4x)    Improvements                  2",
      "  Scored cycles                 4    Direction      higher is better",
      "  best score        ▁▃▃█  2 – 8",
      "" }, "\n"), section_text(board(MAX, "max"), "text", "── Optimization"))
  end)

  it("markdown", function()
    local md = section_text(board(MIN, "min"), "markdown", "## Optimization")
    assert.matches("| **Best score** | 2 |\n| **Best cycle** | c4 |\n| **First score** | 10 |\n| **Last score** | 2 |\n"
      .. "| **Improvement** | 8 (5x) |\n| **Improvements** | 2 |\n| **Scored cycles** | 4 |\n"
      .. "| **Direction** | lower is better |\n", md, 1, true)
    assert.matches("best score: `█▆▆▁` 2 – 10", md, 1, true)
    md = section_text(board(MAX, "max"), "markdown", "## Optimization")
    assert.matches("| **Best score** | 8 |\n| **Best cycle** | c4 |\n| **First score** | 2 |\n| **Last score** | 8 |\n"
      .. "| **Improvement** | 6 (4x) |\n", md, 1, true)
    assert.matches("| **Direction** | higher is better |", md, 1, true)
  end)

  it("html: the best-score line goes down for a minimising run, up for a maximising one", function()
    local function line(d)
      local html = d:render("html")
      local points = {}
      for v in html:gmatch("<title>best score: %d+, ([%d.]+)</title>") do
        points[#points + 1] = tonumber(v)
      end
      return points, html
    end
    local points, html = line(board(MIN, "min"))
    assert.are.same({ 10, 8, 8, 2 }, points)
    assert.matches("<div><dt>Best score</dt><dd>2</dd></div>", html, 1, true)
    assert.matches("<div><dt>Improvement</dt><dd>8 (5x)</dd></div>", html, 1, true)
    assert.matches("score (lower is better)", html, 1, true)
    points, html = line(board(MAX, "max"))
    assert.are.same({ 2, 4, 4, 8 }, points)
    assert.matches("<div><dt>Best score</dt><dd>8</dd></div>", html, 1, true)
    assert.matches("score (higher is better)", html, 1, true)
  end)

  it("prometheus: the best score and the direction", function()
    local prom = board(MIN, "min"):render("prometheus")
    assert.matches("\npo_dashboard_best_score 2\n", prom, 1, true)
    assert.matches('\npo_dashboard_score_direction{direction="min"} 1\n', prom, 1, true)
    prom = board(MAX, "max"):render("prometheus")
    assert.matches("\npo_dashboard_best_score 8\n", prom, 1, true)
    assert.matches('\npo_dashboard_score_direction{direction="max"} 1\n', prom, 1, true)
  end)

  it("csv: each cycle's score and its best, as recorded", function()
    local cycles = cycles_of(MIN)
    cycles[2].best_score = 8
    local csv = po.dashboard.new({ cycles = cycles, direction = "min" }):render("csv")
    local rows = {}
    for line in csv:gmatch("([^\r\n]+)\r\n") do
      rows[#rows + 1] = line
    end
    assert.are.equal(5, #rows)
    assert.matches(",10,,,,,,,,,,$", rows[2])
    assert.matches(",8,8,,,,,,,,,$", rows[3])
  end)
end)

describe("the run section", function()
  -- A finished run: the final check not confirming the chain, two accepted
  -- candidates, per-cycle outcomes.
  local function finished(final)
    local cycles = cycles_of(MIN)
    for i, r in ipairs(cycles) do
      r.metadata = { cycle = i, outcomes = { proposed = 4, unusable = i == 1 and 1 or 0,
        failed = i == 3 and { build = 1, tests = 2 } or {}, slower = 1, same = i == 1 and 1 or 0, faster = 1 } }
    end
    cycles[2].metadata.accepted = { id = "c2.1", change = "opt=-O3", speedup = 1.25, ci_low = 1.2, ci_high = 1.3,
      verdict = "faster" }
    cycles[4].metadata.accepted = { id = "c4.3", change = "spin.c +3 -1", speedup = 4, ci_low = 3.5, ci_high = 4.5,
      verdict = "faster" }
    local accepted = {}
    for _, i in ipairs { 2, 4 } do
      local a = {}
      for k, v in pairs(cycles[i].metadata.accepted) do
        a[k] = v
      end
      a.cycle = i
      accepted[#accepted + 1] = a
    end
    return po.dashboard.new({ cycles = cycles, run = { direction = "min", final = final, chain_speedup = 5,
      accepted = accepted, warning = final.verdict ~= "faster" and "the final side-by-side check does not confirm "
        .. "the improvement" or nil } }, { sections = { "run" } })
  end

  it("json: final check, chain, accepted candidates and outcomes", function()
    local doc = po.json.decode(finished({ verdict = "same", speedup = 1.02, ci_low = 0.98, ci_high = 1.06 })
      :render("json")).sections.run
    assert.are.same({ verdict = "same", speedup = 1.02, ci_low = 0.98, ci_high = 1.06 }, doc.final)
    assert.is_false(doc.confirmed)
    assert.are.equal(5, doc.chain_speedup)
    assert.are.equal("the final side-by-side check does not confirm the improvement", doc.warning)
    assert.are.same({ cycle = "2", id = "c2.1", change = "opt=-O3", speedup = 1.25, ci_low = 1.2, ci_high = 1.3,
      verdict = "faster" }, doc.accepted[1])
    assert.are.equal("spin.c +3 -1", doc.accepted[2].change)
    assert.are.same({ cycle = "3", proposed = 4, unusable = 0, failed = 3, failed_stages = "build 1, tests 2",
      slower = 1, same = 0, faster = 1 }, doc.cycles[3])
    assert.are.equal("c4.3", doc.cycles[4].accepted)
  end)

  it("text: a final check that is not 'faster' is said plainly", function()
    local text = section_text(finished({ verdict = "same", speedup = 1.02, ci_low = 0.98, ci_high = 1.06 }), "text",
      "── Run verdict")
    assert.are.equal(table.concat({
      "── Run verdict ─────────────────────────────────────────────────────────────────",
      "  Speedup of the best   1.02x [0.98, 1.06]",
      "  Final check          NOT CONFIRMED: same",
      "  Chain product                         5x",
      "  Objective                       minimise",
      "  Warning: the final side-by-side check does not confirm the improvement",
      "  Accepted candidates",
      "  cycle  candidate  change                 speedup  verdict",
      "  ─────  ─────────  ────────────  ────────────────  ───────",
      "  2      c2.1       opt=-O3       1.25x [1.2, 1.3]  faster",
      "  4      c4.3       spin.c +3 -1     4x [3.5, 4.5]  faster",
      "  Candidates per cycle",
      "  cycle  proposed  unusable  failed                slower  same  faster",
      "  ─────  ────────  ────────  ────────────────────  ──────  ────  ──────",
      "  1             4         1  0                          1     1       1",
      "  2             4         0  0                          1     0       1",
      "  3             4         0  3 (build 1, tests 2)       1     0       1",
      "  4             4         0  0                          1     0       1",
      "" }, "\n"), text)
  end)

  it("markdown, html and prometheus", function()
    local d = finished({ verdict = "faster", speedup = 4.8, ci_low = 4.5, ci_high = 5.1 })
    local md = d:render("markdown")
    assert.matches("| **Speedup of the best** | 4.8x \\[4.5, 5.1\\] (over the original, timed side by side) |", md, 1,
      true)
    assert.matches("| **Final check** | faster: confirmed |", md, 1, true)
    assert.matches("| 4 | c4.3 | spin.c +3 -1 | 4x \\[3.5, 4.5\\] | faster |", md, 1, true)
    assert.matches("| 3 | 4 | 0 | 3 (build 1, tests 2) | 1 | 0 | 1 |", md, 1, true)
    local html = d:render("html")
    assert.matches('<section class="full" id="section-run"><h2>Run verdict</h2>', html, 1, true)
    assert.matches("<td>opt=-O3</td>", html, 1, true)
    local prom = d:render("prometheus")
    assert.matches('\npo_dashboard_final_speedup{bound="estimate"} 4.8\n', prom, 1, true)
    assert.matches('\npo_dashboard_final_speedup{bound="low"} 4.5\n', prom, 1, true)
    assert.matches("\npo_dashboard_final_confirmed 1\n", prom, 1, true)
    assert.matches("\npo_dashboard_chain_speedup 5\n", prom, 1, true)
  end)

  it("csv: each cycle's outcome columns", function()
    local csv = finished({ verdict = "faster", speedup = 4.8 }):render("csv")
    local rows = {}
    for line in csv:gmatch("([^\r\n]+)\r\n") do
      rows[#rows + 1] = line
    end
    assert.matches(",proposed,unusable,failed,slower,same,faster,accepted,speedup$", rows[1])
    assert.matches(",4,1,0,1,1,1,,$", rows[2])
    assert.matches(",4,0,0,1,0,1,c2.1,1.25$", rows[3])
    assert.matches(",4,0,3,1,0,1,,$", rows[4])
  end)
end)
