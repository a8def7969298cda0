--- Exports of a collector's history: a JSON document, JSON lines, or CSV
--- (RFC 4180: CRLF line ends, fields holding a comma, a double quote, CR or
--- LF are quoted, quotes doubled). Times of day are RFC 3339 in UTC
--- ("2026-11-26T12:12:00.123Z"); durations stay seconds.
local core = require "poengine_core"
local json = core.json
local number = require("poengine.metrics.expose").number

local floor, format, concat, date = math.floor, string.format, table.concat, os.date
local type, tostring, ipairs = type, tostring, ipairs

local M = {}

--- Unix seconds as RFC 3339 UTC with milliseconds.
---@param t number
---@return string
function M.rfc3339(t)
  local ms = floor(t * 1000 + 0.5)
  local s = floor(ms / 1000)
  return date("!%Y-%m-%dT%H:%M:%S", s) .. format(".%03dZ", ms - s * 1000)
end

--- The columns of the CSV export, in order (also the keys of every JSON record).
M.columns = {
  "cycle_id", "start_time", "end_time", "duration", "success", "error",
  "llm_calls", "llm_cache_hits", "llm_cache_misses",
  "tokens_in", "tokens_out", "tokens_saved", "cost", "cost_saved",
  "validation_time", "validation_count", "file_operations",
  "score", "best_score", "metadata",
}

local function metadata_json(v)
  if v == nil then
    return json.null
  end
  return v
end

--- A record as the exports show it: times as RFC 3339, absent values null.
local function exported(rec)
  local out = {}
  for _, k in ipairs(M.columns) do
    local v = rec[k]
    if v == nil then
      v = json.null
    elseif k == "start_time" or k == "end_time" then
      v = M.rfc3339(v)
    end
    out[k] = v
  end
  out.metadata = metadata_json(rec.metadata)
  return out
end

--- One CSV field (RFC 4180 quoting).
function M.csv_field(s)
  if s:find('[,"\r\n]') then
    return '"' .. s:gsub('"', '""') .. '"'
  end
  return s
end

local function csv_cell(k, v)
  if v == nil then
    return ""
  elseif k == "start_time" or k == "end_time" then
    return M.rfc3339(v)
  elseif k == "metadata" then
    return M.csv_field(json.encode(v, { sort_keys = true }))
  elseif type(v) == "number" then
    return number(v)
  end
  return M.csv_field(tostring(v))
end

local function csv_row(rec)
  local cells = {}
  for i, k in ipairs(M.columns) do
    cells[i] = csv_cell(k, rec[k])
  end
  return concat(cells, ",") .. "\r\n"
end

local encode_opts = { sort_keys = true }

local writers = {}

-- Each writer appends the export's pieces to out, in order.

function writers.json(out, col, each_record)
  local stats = json.encode(col:statistics(), encode_opts)
  out[#out + 1] = '{"exported_at":' .. json.encode(M.rfc3339(core.time())) .. ',"statistics":' .. stats
    .. ',"cycles":['
  local first = true
  each_record(col, false, function(rec)
    out[#out + 1] = first and "\n" or ",\n"
    out[#out + 1] = json.encode(exported(rec), encode_opts)
    first = false
  end)
  out[#out + 1] = first and "]}\n" or "\n]}\n"
end

function writers.jsonl(out, col, each_record)
  each_record(col, false, function(rec)
    out[#out + 1] = json.encode(exported(rec), encode_opts) .. "\n"
  end)
end

function writers.csv(out, col, each_record)
  out[#out + 1] = concat(M.columns, ",") .. "\r\n"
  each_record(col, false, function(rec)
    out[#out + 1] = csv_row(rec)
  end)
end

--- Writes col's history to path in format fmt: atomically and durably
--- (po.write_file), so a reader never sees half an export and two exports
--- to one path at once leave one of them whole. Returns true, or nil,
--- message, "EIO".
function M.write(col, fmt, path, each_record)
  local writer = writers[fmt]
  if not writer then
    error(("col:export: format must be 'json', 'jsonl' or 'csv', got %s"):format(tostring(fmt)), 3)
  end
  if type(path) ~= "string" or path == "" then
    error("col:export: path must be a file name", 3)
  end
  local out = {}
  writer(out, col, each_record) -- raises for a damaged record or a closed collector: not an I/O failure
  local ok, err = core.write_file(path, concat(out))
  if not ok then
    return nil, "col:export: " .. err:gsub("^po%.write_file: ", ""), "EIO"
  end
  return true
end

return M
