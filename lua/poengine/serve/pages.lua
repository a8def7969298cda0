--- The HTML pages of poengine serve: `/`, every run in the home; and
--- `/runs/<id>`, one run's live dashboard (poengine.dashboard.live), whose
--- main part `/runs/<id>/fragment` is fetched again on each new event.
--- Self-contained: inline CSS, no external script, font or image.
local escape = require "poengine.dashboard.escape"
local fmt = require "poengine.dashboard.fmt"

local M = {}

local HTML = { ["Content-Type"] = "text/html; charset=utf-8", ["Cache-Control"] = "no-store",
  ["Content-Security-Policy"] = "default-src 'none'; style-src 'unsafe-inline'; script-src 'unsafe-inline'; "
    .. "connect-src 'self'; img-src data:" }
M.HTML = HTML

local h, concat, format = escape.html, table.concat, string.format

--- "41.6x [39.9, 43.9]" for a model's best over the original; "—" if none.
function M.best_text(m)
  local b = m.best
  if not b or not b.speedup then
    return fmt.none
  end
  local text = format("%.3gx", b.speedup)
  if b.ci_low and b.ci_high then
    text = text .. format(" [%.3g, %.3g]", b.ci_low, b.ci_high)
  end
  return text
end

local STYLE = [[
body{font:14px/1.45 system-ui,sans-serif;margin:2em;color:#1d2330;background:#fff}
h1{font-size:1.4em}table{border-collapse:collapse}th,td{padding:.35em .8em;border-bottom:1px solid #dde;text-align:left}
td.n{text-align:right;font-variant-numeric:tabular-nums}.running{color:#0a7a2f;font-weight:600}
.stopped{color:#8a5a00}.finished{color:#445}a{color:#1450b4}p.note{color:#667}
]]

--- The index page of the runs (models, newest first) and those that
--- could not be read.
function M.index(models, broken, home)
  local rows = {}
  for _, m in ipairs(models) do
    rows[#rows + 1] = concat {
      "<tr><td><a href=\"/runs/", h(m.id), "\">", h(m.id), "</a></td><td>", h(m.task or ""), "</td>",
      "<td class=\"", h(m.status), "\">", h(m.status), "</td><td>", h(m.started and fmt.datetime(m.started) or fmt.none),
      "</td><td class=\"n\">", h(m.cycles), "</td><td class=\"n\">", h(M.best_text(m)), "</td><td class=\"n\">",
      h(fmt.money(m.cost and m.cost.usd or 0)), "</td></tr>" }
  end
  for _, b in ipairs(broken or {}) do
    rows[#rows + 1] = "<tr><td>" .. h(b.id) .. "</td><td colspan=\"6\">unreadable: " .. h(b.error) .. "</td></tr>"
  end
  local body = #rows > 0 and concat {
    "<table><thead><tr><th>run</th><th>task</th><th>status</th><th>started</th><th>cycles</th>",
    "<th>best over the original</th><th>cost</th></tr></thead><tbody>", concat(rows, "\n"), "</tbody></table>" }
    or "<p class=\"note\">No runs yet: run <code>poengine optimize TASK.lua</code>.</p>"
  return 200, HTML, concat {
    "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>poengine runs</title>",
    "<meta name=\"viewport\" content=\"width=device-width,initial-scale=1\"><style>", STYLE, "</style></head><body>",
    "<h1>poengine runs</h1>", home and ("<p class=\"note\">" .. h(home) .. "</p>") or "", body,
    "<p class=\"note\">JSON: <a href=\"/api/runs\">/api/runs</a> · metrics: <a href=\"/metrics\">/metrics</a></p>",
    "</body></html>\n" }
end

--- The live page of one run (model m): its dashboard, updated in place as
--- the run's events arrive from `offset` on.
function M.run(m, offset)
  local live = require "poengine.dashboard.live"
  local base = "/runs/" .. m.id
  return 200, HTML, live.page(m, { events_url = "/api/runs/" .. m.id .. "/events?from=" .. math.floor(offset or 0),
    fragment_url = base .. "/fragment" })
end

--- The main part of the run's page, for the page to swap in.
function M.fragment(m)
  return 200, HTML, require("poengine.dashboard.live").fragment(m)
end

return M
