--- The JSON API of poengine serve (documented in docs/cli.md):
---   GET /api/runs                    every run's summary, newest first
---   GET /api/runs/<id>               one run's summary
---   GET /api/runs/<id>/candidates    its candidates, in cycle order
---   GET /api/runs/<id>/events        its event log as Server-Sent Events
local po = require "poengine"
local export = require "poengine.runs.export"
local stream = require "poengine.serve.stream"

local M = {}

local JSON = { ["Content-Type"] = "application/json; charset=utf-8", ["Cache-Control"] = "no-store" }

--- A JSON response.
function M.json(status, value)
  return status, JSON, po.json.encode(value, { sort_keys = true }) .. "\n"
end

local status_of = { EINVAL = 400, ENOENT = 404 }

--- The error response for a runtime failure (message, code).
function M.error(message, code)
  return M.json(status_of[code] or 500, { error = message, code = code or "EIO" })
end

--- A model without its candidates (their number instead), as
--- /api/runs and /api/runs/<id> give it: JSON-ready, lists as arrays and
--- times in RFC 3339 (poengine.runs.export.document).
function M.summary(m)
  local s = {}
  for k, v in pairs(m) do
    if k ~= "candidates" and k ~= "process" then
      s[k] = v
    end
  end
  s = export.document(s)
  s.candidates = #m.candidates
  return s
end

function M.list(cat)
  local models, broken = cat:models()
  local runs = {}
  for i, m in ipairs(models) do
    runs[i] = M.summary(m)
  end
  return M.json(200, { runs = po.json.array(runs), unreadable = po.json.array(broken) })
end

function M.run(cat, id)
  local m, err, code = cat:model(id)
  if not m then
    return M.error(err, code)
  end
  return M.json(200, M.summary(m))
end

function M.candidates(cat, id)
  local m, err, code = cat:model(id)
  if not m then
    return M.error(err, code)
  end
  return M.json(200, { id = m.id, candidates = export.document(m).candidates })
end

function M.events(cat, id, req, opts)
  local dir, err, code = cat:dir_of(id)
  if not dir then
    return M.error(err, code)
  end
  return 200, { ["Content-Type"] = "text/event-stream", ["Cache-Control"] = "no-store",
    ["X-Accel-Buffering"] = "no" }, stream.body(dir, stream.start_offset(req), opts)
end

return M
