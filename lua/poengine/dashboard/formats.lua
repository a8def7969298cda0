--- The built-in dashboard formats: text, markdown, json, csv and html (see
--- poengine.dashboard.html), plus prometheus when po.metrics is present.
--- Each is what a script would pass to po.dashboard.format.
local escape = require "poengine.dashboard.escape"
local fmt = require "poengine.dashboard.fmt"
local source = require "poengine.dashboard.source"

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

local function source_line(data)
  return source.describe(data.source)
end

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

--- The CSV columns, in order: the cycle record's fields, metadata as JSON
--- text, then what an optimizer notes of each cycle (empty otherwise): its
--- candidates' outcomes, and the accepted one with its speedup.
M.csv_columns = { "cycle_id", "start_time", "end_time", "duration", "success", "error", "llm_calls",
  "llm_cache_hits", "llm_cache_misses", "tokens_in", "tokens_out", "cost", "validation_time", "validation_count",
  "file_operations", "score", "best_score", "metadata", "proposed", "unusable", "failed", "slower", "same", "faster",
  "accepted", "speedup" }

-- The outcome columns of a cycle (see M.csv_columns).
local function outcome_fields(meta, field, exact)
  local o = type(meta) == "table" and meta.outcomes
  local a = type(meta) == "table" and meta.accepted
  if type(o) ~= "table" then
    return ",,,,,,,"
  end
  local failed = 0
  if type(o.failed) == "table" then
    for _, n in pairs(o.failed) do
      failed = failed + (tonumber(n) or 0)
    end
  end
  return concat({ exact(o.proposed), exact(o.unusable), exact(failed), exact(o.slower), exact(o.same),
    exact(o.faster), type(a) == "table" and field(a.id) or "", type(a) == "table" and exact(a.speedup) or "" }, ",")
end

local SORTED = { sort_keys = true }

-- The CSV field of a cycle's metadata: its JSON text, keys sorted, quoted
-- as a field. A run repeats a few metadata tables (a strategy, a
-- temperature) over thousands of cycles, so within one render the field of
-- each distinct content is made once. The memo is a trie over a table's
-- (key, value) pairs in traversal order; a node's field is at [FIELD]. Only
-- plain tables whose keys are strings and whose values are strings,
-- booleans or finite non-zero numbers are kept (as table keys, each of
-- these stands for exactly one JSON text: 0 and -0 would be one key), and
-- at most MEMO_LIMIT of them.
local FIELD = {}
local MEMO_LIMIT = 256
local huge = math.huge

local function memo_key(v)
  local t = type(v)
  return t == "string" or t == "boolean" or (t == "number" and v == v and v ~= 0 and v ~= huge and v ~= -huge)
end

local function metadata_field(meta, memo, encode)
  local plain = getmetatable(meta) == nil
  if plain then
    local node = memo
    for k, v in pairs(meta) do
      node = node[k]
      node = node and node[v]
      if not node then
        break
      end
    end
    if node and node[FIELD] then
      return node[FIELD]
    end
  end
  local ok, text = pcall(encode, meta, SORTED)
  local out = escape.csv(ok and text or tostring(meta))
  if ok and plain and memo.size < MEMO_LIMIT then
    for k, v in pairs(meta) do
      if type(k) ~= "string" or not memo_key(v) then
        return out
      end
    end
    local node = memo
    for k, v in pairs(meta) do
      local by_value = node[k]
      if not by_value then
        by_value = {}
        node[k] = by_value
      end
      node = by_value[v]
      if not node then
        node = {}
        by_value[v] = node
      end
    end
    node[FIELD] = out
    memo.size = memo.size + 1
  end
  return out
end

add {
  name = "csv",
  extensions = { "csv" },
  render = function(_, data)
    local encode = json().encode
    local field, exact, rfc3339 = escape.csv, fmt.exact, fmt.rfc3339
    local out = { concat(M.csv_columns, ",") }
    local cycles = data.source.cycles
    local memo = { size = 0 }
    for i = 1, #cycles do
      local r = cycles[i]
      local meta = r.metadata
      local outcomes = outcome_fields(meta, field, exact)
      if type(meta) == "table" then
        meta = next(meta) == nil and "" or metadata_field(meta, memo, encode)
      else
        meta = field(meta)
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
        meta,
        outcomes,
      }, ",")
    end
    -- RFC 4180: CRLF after every record.
    return concat(out, "\r\n") .. "\r\n"
  end,
}

-- Prometheus text: the source's figures as po_dashboard_* gauges (a
-- snapshot of the history, which may shrink when trimmed, hence gauges),
-- then, for a live collector, the process's whole metrics registry; both
-- written by po.metrics.expose's writer.
local function gauges(data)
  local list = {}
  local function gauge(name, help, unit, pairs_, value)
    if type(value) ~= "number" then
      return
    end
    local names, values, labels = {}, {}, {}
    for i = 1, #(pairs_ or {}), 2 do
      names[#names + 1], values[#values + 1] = pairs_[i], tostring(pairs_[i + 1])
      labels[pairs_[i]] = tostring(pairs_[i + 1])
    end
    list[#list + 1] = { name = "po_dashboard_" .. name, type = "gauge", help = help, unit = unit or "",
      label_names = names, label_values = values, labels = labels, value = value }
  end
  local src = data.source
  local st = src.statistics
  local o, c, k, v = st.overall_stats, st.cycle_stats, st.cache_stats, st.validation_stats
  local n = function(x)
    return type(x) == "number" and x or 0
  end
  gauge("source_info", "The dashboard's source (1).", nil, { "kind", src.kind, "source", src.label }, 1)
  for _, s in ipairs { { "successful", o.successful_cycles }, { "failed", o.failed_cycles },
    { "active", o.active_cycles } } do
    gauge("cycles", "Cycles in the source, by status.", nil, { "status", s[1] }, n(s[2]))
  end
  gauge("success_ratio", "Successful cycles over ended cycles.", nil, nil, n(o.success_rate))
  for _, stat in ipairs { "mean", "median", "min", "max", "stdev", "p90", "p99" } do
    gauge("cycle_duration_seconds", "Duration of successful cycles.", "seconds", { "stat", stat }, n(c[stat]))
  end
  gauge("llm_calls", "LLM calls, by cache outcome.", nil, { "cache", "hit" }, n(k.cache_hits))
  gauge("llm_calls", "LLM calls, by cache outcome.", nil, { "cache", "miss" }, n(k.cache_misses))
  gauge("cache_hit_ratio", "Cache hits over LLM calls.", nil, nil, n(k.hit_rate))
  local t = source.totals(src)
  local has_cycles = src.kind ~= "statistics"
  local tokens_help = "LLM tokens spent (cache misses) and saved (cache hits), by direction."
  if has_cycles then
    gauge("llm_tokens", tokens_help, nil, { "direction", "in" }, t.tokens_in)
    gauge("llm_tokens", tokens_help, nil, { "direction", "out" }, t.tokens_out)
  end
  gauge("llm_tokens", tokens_help, nil, { "direction", "saved" }, n(k.tokens_saved))
  local cost_help = "US dollars spent on LLM calls and saved by the cache."
  if has_cycles then
    gauge("llm_cost_dollars", cost_help, nil, { "kind", "spent" }, t.cost)
  end
  gauge("llm_cost_dollars", cost_help, nil, { "kind", "saved" }, n(k.cost_saved))
  gauge("validations", "Validation runs.", nil, nil, n(v.total_validations))
  gauge("validation_seconds", "Validation time per cycle.", "seconds", { "stat", "mean" }, n(v.mean_validation_time))
  gauge("validation_seconds", "Validation time per cycle.", "seconds", { "stat", "median" },
    n(v.median_validation_time))
  gauge("file_operations", "File operations recorded in cycles.", nil, nil, n(o.total_file_operations))
  gauge("best_score", "The best score reached.", nil, nil, t.best_score)
  gauge("last_score", "The score of the last scored cycle.", nil, nil, t.last_score)
  local run = src.run or {}
  gauge("score_direction", "The objective's direction (1): lower or higher scores are better.", nil,
    { "direction", run.direction == "min" and "min" or "max" }, 1)
  local final = type(run.final) == "table" and run.final or nil
  if final then
    local help = "The final check: the best's speedup over the original, timed side by side, and its interval."
    gauge("final_speedup", help, nil, { "bound", "estimate" }, final.speedup)
    gauge("final_speedup", help, nil, { "bound", "low" }, final.ci_low)
    gauge("final_speedup", help, nil, { "bound", "high" }, final.ci_high)
    gauge("final_confirmed", "Whether the final check found the best faster than the original (1) or not (0).",
      nil, nil, final.verdict == "faster" and 1 or 0)
  end
  gauge("chain_speedup", "The product of the accepted candidates' per-cycle speedups.", nil, nil, run.chain_speedup)
  return list
end

add {
  name = "prometheus",
  extensions = { "prom" },
  render = function(_, data)
    local list = gauges(data)
    if data.source.kind == "collector" then
      for _, m in ipairs(require("poengine.metrics").collect()) do
        list[#list + 1] = m
      end
    end
    return require("poengine.metrics.expose").expose("prometheus", list)
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
