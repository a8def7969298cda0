--- The built-in dashboard formats: text, markdown, json, csv and html (see
--- poengine.dashboard.html), plus prometheus when po.metrics is present.
--- Each is what a script would pass to po.dashboard.format.
local escape = require "poengine.dashboard.escape"
local fmt = require "poengine.dashboard.fmt"

local M = {}

local concat, rep = table.concat, string.rep
local type, pcall, tostring = type, pcall, tostring

M.list = {}

local function add(spec)
  M.list[#M.list + 1] = spec
end

local function json()
  return require("poengine").json
end

-- "collector (in memory) · 1,000 cycles"
local function source_line(data)
  local src = data.source
  local n = src.kind == "statistics" and src.statistics.overall_stats.total_cycles or #src.cycles
  return src.label .. " \194\183 " .. fmt.int(n) .. (n == 1 and " cycle" or " cycles")
end
M.source_line = source_line

add {
  name = "text",
  extensions = { "txt", "text" },
  render = function(d, data)
    local w = data.options.width
    local title = fmt.truncate(escape.text(data.title), w - 25)
    local stamp = fmt.datetime(data.generated_at)
    local out = {
      fmt.pad(title, w - fmt.width(stamp)) .. stamp,
      fmt.truncate(escape.text(source_line(data)), w),
      rep("\226\149\144", w),
    }
    local ctx = { width = w, source = data.source }
    for _, s in ipairs(data.sections) do
      local head = "\226\148\128\226\148\128 " .. fmt.truncate(escape.text(s.title), w - 5) .. " "
      out[#out + 1] = ""
      out[#out + 1] = head .. rep("\226\148\128", w - fmt.width(head))
      local body = d:section_output(s, "text", ctx)
      if body ~= "" then
        out[#out + 1] = body
      end
    end
    return concat(out, "\n") .. "\n"
  end,
}

add {
  name = "markdown",
  extensions = { "md", "markdown" },
  render = function(d, data)
    local md = escape.markdown
    local out = {
      "# " .. md(data.title),
      "",
      "Generated " .. fmt.datetime(data.generated_at) .. " from " .. md(source_line(data)) .. ".",
    }
    local ctx = { width = data.options.width, source = data.source }
    for _, s in ipairs(data.sections) do
      out[#out + 1] = ""
      out[#out + 1] = "## " .. md(s.title)
      out[#out + 1] = ""
      out[#out + 1] = d:section_output(s, "markdown", ctx)
    end
    return concat(out, "\n") .. "\n"
  end,
}

add {
  name = "json",
  extensions = { "json" },
  render = function(_, data)
    local po_json = json()
    local sections, order = po_json.object(), po_json.array()
    for i, s in ipairs(data.sections) do
      local value = s.error and { error = s.error } or s.data
      -- A section whose data cannot be JSON reports that instead of
      -- spoiling the whole document.
      local ok, err = pcall(po_json.encode, value)
      if not ok then
        value = { error = tostring(err) }
      end
      sections[s.name] = value == nil and po_json.null or value
      order[i] = s.name
    end
    local src = data.source
    local doc = {
      title = data.title,
      generated_at = fmt.rfc3339(data.generated_at),
      source = { kind = src.kind, label = src.label, cycles = #src.cycles },
      statistics = src.statistics,
      order = order,
      sections = sections,
    }
    return po_json.encode(doc, { indent = 2, sort_keys = true }) .. "\n"
  end,
}

--- The CSV columns, in order: the cycle record's fields, then metadata as
--- JSON text.
M.csv_columns = { "cycle_id", "start_time", "end_time", "duration", "success", "error", "llm_calls",
  "llm_cache_hits", "llm_cache_misses", "tokens_in", "tokens_out", "cost", "validation_time", "validation_count",
  "file_operations", "score", "best_score", "metadata" }

add {
  name = "csv",
  extensions = { "csv" },
  render = function(_, data)
    local po_json = json()
    local field, exact, rfc3339 = escape.csv, fmt.exact, fmt.rfc3339
    local out = { concat(M.csv_columns, ",") }
    local cycles = data.source.cycles
    for i = 1, #cycles do
      local r = cycles[i]
      local meta = ""
      if type(r.metadata) == "table" and next(r.metadata) ~= nil then
        local ok, text = pcall(po_json.encode, r.metadata, { sort_keys = true })
        meta = ok and text or tostring(r.metadata)
      elseif r.metadata ~= nil and type(r.metadata) ~= "table" then
        meta = tostring(r.metadata)
      end
      local success = r.success
      out[i + 1] = concat({
        field(r.cycle_id),
        rfc3339(r.start_time) or "",
        rfc3339(r.end_time) or "",
        exact(r.duration),
        success == nil and "" or success and "true" or "false",
        field(r.error),
        exact(r.llm_calls),
        exact(r.llm_cache_hits),
        exact(r.llm_cache_misses),
        exact(r.tokens_in),
        exact(r.tokens_out),
        exact(r.cost),
        exact(r.validation_time),
        exact(r.validation_count),
        exact(r.file_operations),
        exact(r.score),
        exact(r.best_score),
        field(meta),
      }, ",")
    end
    -- RFC 4180: CRLF after every record.
    return concat(out, "\r\n") .. "\r\n"
  end,
}

add {
  name = "html",
  extensions = { "html", "htm" },
  render = function(d, data)
    return require("poengine.dashboard.html").page(d, data)
  end,
}

return M
