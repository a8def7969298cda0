--- The live page of one optimizer run, for `poengine serve`: the judging
--- sections (best, candidates, evolution, outcomes) of the run's model in a
--- self-contained page — inline CSS and one small inline script, nothing
--- fetched from elsewhere — that subscribes to the run's events with
--- EventSource and, on each event, fetches the page's main part again and
--- swaps it in without a reload, keeping the candidates a person opened
--- open. A "live" / "disconnected" badge says whether the event stream is
--- up; a stream that closes is reopened (1 s, doubling to 30 s).
---
---   local live = require "poengine.dashboard.live"
---   live.page(model, { events_url = "/api/runs/ID/events", fragment_url = "/runs/ID/fragment" })
---   live.fragment(model)     -- what fragment_url answers
local escape = require "poengine.dashboard.escape"
local fmt = require "poengine.dashboard.fmt"
local html = require "poengine.dashboard.html"
local judge = require "poengine.dashboard.judge"

local M = {}

local h = escape.html

-- The page's own script: data-events and data-fragment on <body> say where
-- to listen and what to fetch, so no URL is ever pasted into script text.
M.script = [[
(function () {
  var body = document.body, main = document.getElementById("live-main"), badge = document.getElementById("live-state");
  var busy = false, again = false, retry = 1000, source = null;
  function state(s) { badge.textContent = s; badge.className = "live-state " + s; }
  function refresh() {
    if (busy) { again = true; return; }
    busy = true;
    fetch(body.getAttribute("data-fragment"), { cache: "no-store" }).then(function (r) {
      if (!r.ok) { throw new Error("HTTP " + r.status); }
      return r.text();
    }).then(function (text) {
      var open = [];
      main.querySelectorAll("details[open][id]").forEach(function (d) { open.push(d.id); });
      main.innerHTML = text;
      open.forEach(function (id) {
        var d = document.getElementById(id);
        if (d && d.tagName === "DETAILS") { d.open = true; }
      });
      body.setAttribute("data-updates", String(Number(body.getAttribute("data-updates") || 0) + 1));
    }).catch(function () { state("disconnected"); }).then(function () {
      busy = false;
      if (again) { again = false; refresh(); }
    });
  }
  function connect() {
    source = new EventSource(body.getAttribute("data-events"));
    source.onopen = function () { retry = 1000; state("live"); refresh(); };
    source.onmessage = refresh;
    ["start", "validated", "candidate", "cycle", "final", "end", "reset", "update"].forEach(function (k) {
      source.addEventListener(k, refresh);
    });
    source.onerror = function () {
      state("disconnected");
      if (source.readyState === 2) {
        source.close();
        setTimeout(connect, retry);
        retry = Math.min(retry * 2, 30000);
      }
    };
  }
  connect();
})();
]]

M.css = [[
.live-state{display:inline-block;padding:1px 9px;border-radius:9px;font-size:12px;font-weight:650;margin-left:8px}
.live-state.live{color:var(--po-ok);background:var(--po-ok-bg)}
.live-state.live::before{content:"\25CF  "}
.live-state.disconnected,.live-state.connecting{color:var(--po-bad);background:var(--po-bad-bg)}
]]

-- The page allows its own inline script and style, and connections to its
-- own origin (the event stream and the fragment); nothing else.
M.csp = "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; connect-src 'self'; "
  .. "img-src data:; base-uri 'none'; form-action 'none'"

--- The HTML of the page's main part for `model` (poengine.runs.model):
--- the judging sections, each a <section>.
---@param model table
---@return string
function M.fragment(model)
  if type(model) ~= "table" then
    error("poengine.dashboard.live.fragment: model must be a run model (poengine.runs.model), got " .. type(model), 2)
  end
  local dashboard = require "poengine.dashboard"
  local d = dashboard.new(model, { sections = judge.names })
  local data = assert(d:data())
  local out = {}
  local ctx = { width = 80, source = data.source }
  for _, s in ipairs(data.sections) do
    out[#out + 1] = '<section class="full" id="section-' .. h(s.name) .. '"><h2>' .. h(s.title) .. "</h2>"
      .. d:section_output(s, "html", ctx) .. "</section>"
  end
  return table.concat(out, "\n") .. "\n"
end

--- The whole live page for `model`. Options: `events_url` (the run's
--- Server-Sent Events stream), `fragment_url` (answers M.fragment of the
--- run's model now), `title` (default "run ID").
---@param model table
---@param opts { events_url: string, fragment_url: string, title?: string }
---@return string
function M.page(model, opts)
  if type(model) ~= "table" then
    error("poengine.dashboard.live.page: model must be a run model (poengine.runs.model), got " .. type(model), 2)
  end
  if type(opts) ~= "table" or type(opts.events_url) ~= "string" or type(opts.fragment_url) ~= "string" then
    error("poengine.dashboard.live.page: options must give events_url and fragment_url (strings)", 2)
  end
  require("poengine.util.options").check("poengine.dashboard.live.page", opts,
    { events_url = true, fragment_url = true, title = true }, 2)
  local title = opts.title or ("run " .. tostring(model.id))
  return table.concat({
    "<!DOCTYPE html>",
    '<html lang="en">',
    "<head>",
    '<meta charset="utf-8">',
    '<meta name="viewport" content="width=device-width, initial-scale=1">',
    '<meta http-equiv="Content-Security-Policy" content="' .. M.csp .. '">',
    '<meta name="color-scheme" content="light dark">',
    '<meta name="generator" content="poengine">',
    "<title>" .. h(title) .. "</title>",
    "<style>" .. html.css .. M.css .. "</style>",
    "</head>",
    '<body data-events="' .. h(opts.events_url) .. '" data-fragment="' .. h(opts.fragment_url) .. '">',
    "<header><h1>" .. h(title) .. '<span id="live-state" class="live-state connecting">connecting</span></h1>'
      .. '<div class="meta">' .. h(tostring(model.task or model.id)) .. " \194\183 page made "
      .. h(fmt.datetime(require("poengine").time())) .. "</div></header>",
    '<main id="live-main">',
    M.fragment(model),
    "</main>",
    "<script>" .. M.script .. "</script>",
    "</body>",
    "</html>",
  }, "\n") .. "\n"
end

return M
