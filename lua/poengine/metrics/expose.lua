--- Writes the metrics registry (the list po.metrics.collect() returns) as
--- Prometheus text 0.0.4, OpenMetrics 1.0 text, or a JSON document.
local json = require("poengine_core").json

local concat, format, floor, huge = table.concat, string.format, math.floor, math.huge

local M = {}

--- A sample value: integers without a decimal point, other numbers as the
--- shortest of 15, 16 or 17 significant digits that reads back exactly.
local function number(x)
  if x ~= x then
    return "NaN"
  elseif x == huge then
    return "+Inf"
  elseif x == -huge then
    return "-Inf"
  elseif x == floor(x) and x > -2 ^ 53 and x < 2 ^ 53 then
    return format("%d", x)
  end
  for digits = 15, 16 do
    local s = format("%." .. digits .. "g", x)
    if tonumber(s) == x then
      return s
    end
  end
  return format("%.17g", x)
end
M.number = number

--- A bucket bound as a canonical float (OpenMetrics): "1.0", "0.25", "+Inf".
local function bound(x)
  local s = number(x)
  if not s:find("[.eInN]") then
    s = s .. ".0"
  end
  return s
end

local label_escapes = { ["\\"] = "\\\\", ['"'] = '\\"', ["\n"] = "\\n" }

local function escape_label(s)
  return (s:gsub('[\\"\n]', label_escapes))
end

-- Prometheus 0.0.4 escapes backslash and newline in HELP; OpenMetrics also
-- the double quote.
local function escape_help(s, quotes)
  return (s:gsub(quotes and '[\\"\n]' or "[\\\n]", label_escapes))
end

--- {a="x",b="y"} with extra (the le pair) last; "" when there are none.
local function labels(m, extra)
  local parts = {}
  for i, name in ipairs(m.label_names) do
    parts[i] = name .. '="' .. escape_label(m.label_values[i]) .. '"'
  end
  if extra then
    parts[#parts + 1] = extra
  end
  if #parts == 0 then
    return ""
  end
  return "{" .. concat(parts, ",") .. "}"
end

local function write_samples(out, m)
  local name = m.name
  if m.type == "counter" then
    out[#out + 1] = name .. "_total" .. labels(m) .. " " .. number(m.value)
  elseif m.type == "gauge" then
    out[#out + 1] = name .. labels(m) .. " " .. number(m.value)
  else
    for i, le in ipairs(m.buckets) do
      out[#out + 1] = name .. "_bucket" .. labels(m, 'le="' .. bound(le) .. '"') .. " " .. number(m.cumulative[i])
    end
    out[#out + 1] = name .. "_bucket" .. labels(m, 'le="+Inf"') .. " " .. number(m.count)
    out[#out + 1] = name .. "_sum" .. labels(m) .. " " .. number(m.sum)
    out[#out + 1] = name .. "_count" .. labels(m) .. " " .. number(m.count)
  end
end

--- Calls fn(first, family_metrics) once per family (metrics come grouped).
local function each_family(metrics, fn)
  local i = 1
  while metrics[i] do
    local j = i
    while metrics[j + 1] and metrics[j + 1].name == metrics[i].name do
      j = j + 1
    end
    fn(metrics[i], i, j)
    i = j + 1
  end
end

local function prometheus(metrics)
  local out = {}
  each_family(metrics, function(f, i, j)
    -- 0.0.4 names a counter's family by its sample name, as Prometheus's clients do
    local fname = f.type == "counter" and f.name .. "_total" or f.name
    if f.help ~= "" then
      out[#out + 1] = "# HELP " .. fname .. " " .. escape_help(f.help, false)
    end
    out[#out + 1] = "# TYPE " .. fname .. " " .. f.type
    for k = i, j do
      write_samples(out, metrics[k])
    end
  end)
  out[#out + 1] = ""
  return concat(out, "\n")
end

local function openmetrics(metrics)
  local out = {}
  each_family(metrics, function(f, i, j)
    out[#out + 1] = "# TYPE " .. f.name .. " " .. f.type
    if f.unit ~= "" then
      out[#out + 1] = "# UNIT " .. f.name .. " " .. f.unit
    end
    if f.help ~= "" then
      out[#out + 1] = "# HELP " .. f.name .. " " .. escape_help(f.help, true)
    end
    for k = i, j do
      write_samples(out, metrics[k])
    end
  end)
  out[#out + 1] = "# EOF"
  out[#out + 1] = ""
  return concat(out, "\n")
end

local function json_number(x)
  if x ~= x or x == huge or x == -huge then
    return number(x) -- "NaN", "+Inf", "-Inf" as strings: JSON has no such numbers
  end
  return x
end

local function document(metrics)
  local families = {}
  each_family(metrics, function(f, i, j)
    local samples = {}
    for k = i, j do
      local m = metrics[k]
      local s = { labels = json.object(m.labels) }
      if m.type == "histogram" then
        for _, key in ipairs { "count", "sum", "min", "max", "mean", "p50", "p90", "p99" } do
          s[key] = m[key]
        end
        local buckets = {}
        for b, le in ipairs(m.buckets) do
          buckets[b] = { le = le, count = m.cumulative[b] }
        end
        buckets[#buckets + 1] = { le = "+Inf", count = m.count }
        s.buckets = buckets
      else
        s.value = json_number(m.value)
      end
      samples[#samples + 1] = s
    end
    families[#families + 1] = {
      name = f.name,
      type = f.type,
      help = f.help,
      unit = f.unit,
      samples = json.array(samples),
    }
  end)
  return json.encode({ metrics = json.array(families) }, { sort_keys = true })
end

local writers = { prometheus = prometheus, openmetrics = openmetrics, json = document }

--- The content types a server should send with each format.
M.content_types = {
  prometheus = "text/plain; version=0.0.4; charset=utf-8",
  openmetrics = "application/openmetrics-text; version=1.0.0; charset=utf-8",
  json = "application/json",
}

function M.expose(fmt, metrics)
  local writer = writers[fmt]
  if not writer then
    error(("po.metrics.expose: format must be 'prometheus', 'openmetrics' or 'json', got %s"):format(
      type(fmt) == "string" and "'" .. fmt .. "'" or type(fmt)), 3)
  end
  return writer(metrics)
end

return M
