--- The html format: one self-contained page — inline CSS, inline SVG charts,
--- no script, no external asset, font or CDN — readable in light and dark
--- mode (prefers-color-scheme). A Content-Security-Policy that allows
--- nothing but the inline styles is the second line of defence behind the
--- escaping: even injected markup could not run a script or fetch anything.
local escape = require "poengine.dashboard.escape"
local fmt = require "poengine.dashboard.fmt"
local source = require "poengine.dashboard.source"

local M = {}

local h = escape.html
local concat = table.concat

M.css = [[
:root{color-scheme:light dark;--po-bg:#f4f6f9;--po-card:#ffffff;--po-fg:#1f2937;--po-muted:#6b7280;--po-grid:#e8ebf0;--po-border:#e2e6ec;--po-c1:#2563eb;--po-c2:#f59e0b;--po-c3:#10b981;--po-c4:#ef4444;--po-c5:#8b5cf6;--po-c6:#0891b2;--po-ok:#166534;--po-ok-bg:#dcfce7;--po-bad:#991b1b;--po-bad-bg:#fee2e2;--po-run:#1e40af;--po-run-bg:#dbeafe}
@media (prefers-color-scheme:dark){:root{--po-bg:#0e1117;--po-card:#161b22;--po-fg:#e6edf3;--po-muted:#8b949e;--po-grid:#262c36;--po-border:#2a313c;--po-c1:#58a6ff;--po-c2:#f2b84b;--po-c3:#3fb950;--po-c4:#f85149;--po-c5:#bc8cff;--po-c6:#39c5cf;--po-ok:#7ee2a8;--po-ok-bg:#12361f;--po-bad:#ffa198;--po-bad-bg:#4a1512;--po-run:#a5c8ff;--po-run-bg:#132b52}}
*{box-sizing:border-box}
html{background:var(--po-bg)}
body{margin:0;color:var(--po-fg);font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,"Helvetica Neue",Arial,sans-serif}
header{display:flex;flex-wrap:wrap;justify-content:space-between;align-items:baseline;gap:4px 16px;max-width:1600px;margin:0 auto;padding:18px 24px 6px}
h1{font-size:20px;margin:0;font-weight:650;letter-spacing:-.01em}
.meta{color:var(--po-muted);font-size:13px}
main{display:grid;grid-template-columns:repeat(2,minmax(0,1fr));gap:14px;max-width:1600px;margin:0 auto;padding:8px 24px 24px}
@media (max-width:900px){main{grid-template-columns:minmax(0,1fr)}}
section{background:var(--po-card);border:1px solid var(--po-border);border-radius:10px;padding:14px 16px;min-width:0}
section.full{grid-column:1/-1}
h2{font-size:14px;font-weight:650;margin:0 0 10px;text-transform:uppercase;letter-spacing:.04em;color:var(--po-muted)}
h3{font-size:13px;font-weight:600;margin:14px 0 6px;color:var(--po-muted)}
.tiles{display:grid;grid-template-columns:repeat(auto-fit,minmax(136px,1fr));gap:10px}
.tile{border:1px solid var(--po-border);border-radius:8px;padding:8px 10px;min-width:0}
.tile .k{font-size:12px;color:var(--po-muted)}
.tile .v{font-size:20px;font-weight:650;font-variant-numeric:tabular-nums;overflow-wrap:anywhere}
.tile .hint{font-size:11px;color:var(--po-muted);overflow-wrap:anywhere}
dl.kv{display:grid;grid-template-columns:repeat(auto-fill,minmax(105px,1fr));gap:6px 12px;margin:0}
dt{font-size:12px;color:var(--po-muted)}
dd{margin:0;font-weight:600;font-variant-numeric:tabular-nums;overflow-wrap:anywhere}
figure{margin:12px 0 0}
figure svg{display:block;width:100%;height:auto}
.table-wrap{overflow-x:auto}
table{border-collapse:collapse;width:100%;font-size:13px}
th,td{padding:5px 8px;border-bottom:1px solid var(--po-border);text-align:left;white-space:nowrap}
td:last-child{white-space:normal;overflow-wrap:anywhere}
th{color:var(--po-muted);font-weight:600;font-size:12px}
.num{text-align:right;font-variant-numeric:tabular-nums}
.badge{display:inline-block;padding:0 7px;border-radius:9px;font-size:12px;font-weight:600}
.badge.ok{color:var(--po-ok);background:var(--po-ok-bg)}
.badge.failed{color:var(--po-bad);background:var(--po-bad-bg)}
.badge.active{color:var(--po-run);background:var(--po-run-bg)}
.empty,.note{color:var(--po-muted);font-style:italic;margin:6px 0}
footer{color:var(--po-muted);font-size:12px;text-align:center;padding:0 24px 18px}
]] .. require "poengine.dashboard.judge_css"

M.csp = "default-src 'none'; style-src 'unsafe-inline'; img-src data:; base-uri 'none'; form-action 'none'"

--- The whole page for the html format.
---@param d table     the dashboard
---@param data table  what d:data() returned
---@return string
function M.page(d, data)
  local out = {
    "<!DOCTYPE html>",
    '<html lang="en">',
    "<head>",
    '<meta charset="utf-8">',
    '<meta name="viewport" content="width=device-width, initial-scale=1">',
    '<meta http-equiv="Content-Security-Policy" content="' .. M.csp .. '">',
    '<meta name="color-scheme" content="light dark">',
    '<meta name="generator" content="poengine">',
  }
  if data.options.refresh then
    out[#out + 1] = string.format('<meta http-equiv="refresh" content="%d">', data.options.refresh)
  end
  out[#out + 1] = "<title>" .. h(data.title) .. "</title>"
  out[#out + 1] = "<style>" .. M.css .. "</style>"
  out[#out + 1] = "</head>"
  out[#out + 1] = "<body>"
  out[#out + 1] = "<header><h1>" .. h(data.title) .. '</h1><div class="meta">' .. h(source.describe(data.source))
    .. " \194\183 generated " .. h(fmt.datetime(data.generated_at)) .. "</div></header>"
  out[#out + 1] = "<main>"
  local ctx = { width = data.options.width, source = data.source }
  for _, s in ipairs(data.sections) do
    out[#out + 1] = '<section class="' .. (s.layout == "half" and "half" or "full") .. '" id="section-'
      .. h(s.name) .. '"><h2>' .. h(s.title) .. "</h2>"
    out[#out + 1] = d:section_output(s, "html", ctx)
    out[#out + 1] = "</section>"
  end
  out[#out + 1] = "</main>"
  out[#out + 1] = "<footer>poengine " .. h(require("poengine").version) .. "</footer>"
  out[#out + 1] = "</body>"
  out[#out + 1] = "</html>"
  return concat(out, "\n") .. "\n"
end

return M
