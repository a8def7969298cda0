--- The "candidates" section of a run's judging dashboard: one row per
--- candidate (cycle, id, what changed, stage reached, verdict, speedup with
--- its interval, cost). In the html page each row is a <details> whose
--- summary is the row: a click shows the diff (or parameters, or why the
--- reply was unusable) and each validator's status, errors and output.
--- Markdown gives the table, then each candidate in a <details> block with
--- its diff in a fenced block. No script: the browser does the opening.
local escape = require "poengine.dashboard.escape"
local fmt = require "poengine.dashboard.fmt"
local judge = require "poengine.dashboard.judge"

local h, md = escape.html, escape.markdown
local concat = table.concat

local function json()
  return require("poengine").json
end

local COLUMNS = { "cycle", "candidate", "change", "stage", "verdict", "speedup", "cost" }

-- Each validator's result as plain values.
local function results_of(c)
  local list = {}
  for i, r in ipairs(c.results or {}) do
    local errors = {}
    for _, e in ipairs(type(r.errors) == "table" and r.errors or {}) do
      errors[#errors + 1] = tostring(e)
    end
    list[i] = { name = tostring(r.name), status = tostring(r.status or (r.passed and "ok" or "failed")),
      duration = type(r.duration) == "number" and r.duration or nil, errors = concat(errors, "; "),
      stdout = type(r.stdout) == "string" and r.stdout or nil, stderr = type(r.stderr) == "string" and r.stderr or nil }
  end
  return json().array(list)
end

local function row_cells(c)
  return { tostring(c.cycle), c.id, c.change, c.stage, c.verdict, fmt.speedup(c.speedup, c.ci_low, c.ci_high),
    judge.cost(c.cost) }
end

-- HTML -------------------------------------------------------------------

-- A diff with its added and removed lines marked for colour (the hunks'
-- headers tell a removed "--- text" from a file's header).
local CLASS = { header = "fh", hunk = "hunk", add = "add", del = "del" }
local function diff_html(diff)
  local out = {}
  for i, l in ipairs(require("poengine.optimizer.diff").lines(diff)) do
    local class = CLASS[l[2]]
    out[i] = class and ('<span class="' .. class .. '">' .. h(l[1]) .. "</span>") or h(l[1])
  end
  return '<pre class="diff">' .. concat(out, "\n") .. "</pre>"
end

local function body_html(c)
  local out = { '<div class="cand-body">', "<p>proposed from <b>" .. h(c.parent) .. "</b>"
    .. (c.runs and (", timed " .. h(fmt.int(c.runs)) .. " runs") or "") .. "</p>" }
  if c.malformed then
    out[#out + 1] = "<h4>Why the reply was unusable</h4><pre>" .. h(c.malformed) .. "</pre>"
  end
  if c.params then
    out[#out + 1] = "<h4>Parameters</h4><pre>" .. h(c.params) .. "</pre>"
  end
  if c.diff then
    out[#out + 1] = "<h4>Diff</h4>" .. diff_html(c.diff)
  end
  if #c.results > 0 then
    out[#out + 1] = '<h4>Validators</h4><div class="table-wrap"><table><thead><tr><th>validator</th><th>status</th>'
      .. '<th class="num">duration</th><th>errors</th></tr></thead><tbody>'
    for _, r in ipairs(c.results) do
      out[#out + 1] = "<tr><td>" .. h(r.name) .. '</td><td><span class="badge ' .. (r.status == "ok" and "ok" or
        r.status == "skipped" and "active" or "failed") .. '">' .. h(r.status) .. '</span></td><td class="num">'
        .. h(fmt.seconds(r.duration)) .. "</td><td>" .. h(r.errors) .. "</td></tr>"
    end
    out[#out + 1] = "</tbody></table></div>"
    for _, r in ipairs(c.results) do
      for _, stream in ipairs { "stdout", "stderr" } do
        if r[stream] then
          out[#out + 1] = '<p class="out-head">' .. h(r.name) .. " " .. stream .. " (its end)</p><pre>"
            .. h(r[stream]) .. "</pre>"
        end
      end
    end
  end
  out[#out + 1] = "</div>"
  return concat(out)
end

local function html(d)
  if d.none then
    return '<p class="note">' .. h(d.none) .. "</p>"
  end
  if #d.candidates == 0 then
    return '<p class="empty">no candidate yet</p>'
  end
  local out = { '<div class="cands" role="table"><div class="cand-row cand-head" role="row">' }
  for _, name in ipairs(COLUMNS) do
    out[#out + 1] = '<span role="columnheader">' .. h(name) .. "</span>"
  end
  out[#out + 1] = "</div>"
  for _, c in ipairs(d.candidates) do
    local cells = row_cells(c)
    out[#out + 1] = '<details class="cand ' .. h(c.outcome) .. (c.accepted and " accepted" or "") .. '" id="cand-'
      .. h(c.id) .. '"><summary class="cand-row" role="row">'
    for j, v in ipairs(cells) do
      local cls = j == 3 and ' class="chg"' or (j >= 6 and ' class="num"' or "")
      if j == 5 then
        v = '<span class="badge v-' .. h(c.outcome) .. '">' .. h(v) .. "</span>"
      else
        v = h(v)
      end
      out[#out + 1] = "<span" .. cls .. ">" .. v .. "</span>"
    end
    out[#out + 1] = "</summary>" .. body_html(c) .. "</details>"
  end
  out[#out + 1] = "</div>"
  return concat(out, "\n")
end

-- Markdown ---------------------------------------------------------------

-- A fenced block that no run of backticks in `text` can close early.
local function fenced(text, lang)
  local longest = 2
  for run in text:gmatch("`+") do
    longest = math.max(longest, #run)
  end
  local fence = string.rep("`", longest + 1)
  return fence .. (lang or "") .. "\n" .. text .. (text:sub(-1) == "\n" and "" or "\n") .. fence
end

local function markdown(d)
  if d.none then
    return md(d.none)
  end
  if #d.candidates == 0 then
    return "_no candidate yet_"
  end
  local out = { "| " .. concat(COLUMNS, " | ") .. " |", "|---:|---|---|---|---|---:|---:|" }
  for _, c in ipairs(d.candidates) do
    local cells = row_cells(c)
    for j, v in ipairs(cells) do
      cells[j] = md(v)
    end
    out[#out + 1] = "| " .. concat(cells, " | ") .. " |"
  end
  for _, c in ipairs(d.candidates) do
    if c.diff or c.params or c.malformed or #c.results > 0 then
      out[#out + 1] = ""
      out[#out + 1] = "<details><summary>" .. h(c.id .. ": " .. c.verdict .. (c.change ~= "" and (" ("
        .. c.change .. ")") or "")) .. "</summary>"
      out[#out + 1] = ""
      out[#out + 1] = "Proposed from " .. md(c.parent) .. "."
      if c.malformed then
        out[#out + 1] = ""
        out[#out + 1] = fenced(c.malformed, "text")
      end
      if c.params then
        out[#out + 1] = ""
        out[#out + 1] = fenced(c.params, "json")
      end
      if c.diff then
        out[#out + 1] = ""
        out[#out + 1] = fenced(c.diff, "diff")
      end
      for _, r in ipairs(c.results) do
        out[#out + 1] = ""
        out[#out + 1] = "- " .. md(r.name) .. ": " .. md(r.status) .. ", " .. md(fmt.seconds(r.duration))
          .. (r.errors ~= "" and (" \226\128\148 " .. md(r.errors)) or "")
        for _, stream in ipairs { "stdout", "stderr" } do
          if r[stream] then
            out[#out + 1] = ""
            out[#out + 1] = fenced(r[stream], "text")
          end
        end
      end
      out[#out + 1] = ""
      out[#out + 1] = "</details>"
    end
  end
  return concat(out, "\n")
end

return judge.section {
  name = "candidates",
  title = "Candidates",
  data = function(m)
    local list = {}
    for i, c in ipairs(m.candidates) do
      list[i] = { cycle = c.cycle, id = c.id, parent = tostring(c.parent or "original"), change = c.change or "",
        stage = judge.stage(c), verdict = judge.verdict(c), outcome = judge.outcome(c), accepted = c.accepted,
        speedup = c.speedup, ci_low = c.ci_low, ci_high = c.ci_high, runs = c.runs, cost = c.cost,
        malformed = c.malformed ~= nil and tostring(c.malformed) or nil,
        params = c.params ~= nil and json().encode(c.params, { sort_keys = true, indent = true }) or nil,
        diff = type(c.diff) == "string" and c.diff or nil, results = results_of(c) }
    end
    return { candidates = json().array(list) }
  end,
  view = function(d)
    if d.none then
      return { { "note", text = d.none } }
    end
    local rows = {}
    for i, c in ipairs(d.candidates) do
      rows[i] = row_cells(c)
    end
    return { { "table", empty = "no candidate yet", rows = rows, columns = { { "cycle", "right" }, "candidate",
      { "change", "left", flex = true }, "stage", "verdict", { "speedup", "right" }, { "cost", "right" } } } }
  end,
  html = html,
  markdown = markdown,
}
