--- Blocks: the layout a section's `view(data, ctx)` returns, drawn by every
--- built-in format. A view is a list of blocks, each a table whose first
--- element names its kind:
---
---   { "kv", items = { { label, value [, hint] }, ... }, tiles = bool }
---   { "table", title =, columns = { "name" | { "name", "left"|"right", flex = bool }, ... },
---     rows = { { cell, ... }, ... }, empty = "text when there are no rows" }
---   { "chart", chart = "line"|"bar"|"histogram", options = { chart options },
---     spark = { numbers } (drawn as a sparkline in text and Markdown), label = "...",
---     spark_format = fn(v) -> string (the range shown beside it) }
---   { "note", text = "..." }
---
--- Every string in a block is plain text: the renderers escape it.
local escape = require "poengine.dashboard.escape"
local stats = require "poengine.metrics.stats"
local fmt = require "poengine.dashboard.fmt"

local M = {}

local concat, rep, format, byte, sub = table.concat, string.rep, string.format, string.byte, string.sub
local floor, max, min = math.floor, math.max, math.min
local width, pad, truncate = fmt.width, fmt.pad, fmt.truncate
local type, pairs, tostring = type, pairs, tostring

-- s without trailing whitespace (what gsub(s, "%s+$", "") gives).
local space = { [32] = true, [9] = true, [10] = true, [11] = true, [12] = true, [13] = true }
local function rstrip(s)
  local e = #s
  while e > 0 and space[byte(s, e)] do
    e = e - 1
  end
  return e == #s and s or sub(s, 1, e)
end

local function column(c)
  if type(c) == "table" then
    return escape.str(c[1]), c[2] or "left", c.flex
  end
  return escape.str(c), "left", nil
end

local function cell_text(v)
  if type(v) == "number" then
    if v == floor(v) then
      return fmt.int(v)
    end
    return fmt.num(v, 4)
  end
  return escape.str(v)
end

--- Blocks for data that a section gives without a view: scalars become a
--- key/value block, lists of records tables, other values JSON text.
---@param data any
---@return table[]
function M.auto(data)
  if type(data) ~= "table" then
    return { { "note", text = cell_text(data) } }
  end
  local function record_table(list, title)
    local cols, seen = {}, {}
    for _, row in ipairs(list) do
      for k in pairs(row) do
        if not seen[k] then
          seen[k] = true
          cols[#cols + 1] = tostring(k)
        end
      end
    end
    table.sort(cols)
    local rows = {}
    for i, row in ipairs(list) do
      local r = {}
      for j, k in ipairs(cols) do
        local v = row[k]
        if v == nil then
          v = row[tonumber(k)]
        end
        r[j] = type(v) == "table" and require("poengine").json.encode(v, { sort_keys = true }) or cell_text(v)
      end
      rows[i] = r
    end
    local columns = {}
    for j, k in ipairs(cols) do
      columns[j] = { k:gsub("_", " "), "left", flex = true }
    end
    return { "table", title = title, columns = columns, rows = rows, empty = "none" }
  end
  if #data > 0 and type(data[1]) == "table" then
    return { record_table(data) }
  end
  local keys = {}
  for k in pairs(data) do
    keys[#keys + 1] = k
  end
  table.sort(keys, function(a, b)
    return tostring(a) < tostring(b)
  end)
  local items, out = {}, {}
  for _, k in ipairs(keys) do
    local v = data[k]
    local label = tostring(k):gsub("_", " ")
    if type(v) == "table" and #v > 0 and type(v[1]) == "table" then
      out[#out + 1] = record_table(v, label)
    elseif type(v) == "table" then
      local ok, text = pcall(require("poengine").json.encode, v, { sort_keys = true })
      items[#items + 1] = { label, ok and text or tostring(v) }
    else
      items[#items + 1] = { label, cell_text(v) }
    end
  end
  if #items > 0 then
    table.insert(out, 1, { "kv", items = items })
  end
  return out
end

local SPARKS = { "\226\150\129", "\226\150\130", "\226\150\131", "\226\150\132", "\226\150\133", "\226\150\134",
  "\226\150\135", "\226\150\136" }

local finite = stats.finite

--- A sparkline of `values` at most `w` characters wide (each character the
--- mean of its share of the values); a gap where a share has no number.
---@param values number[]
---@param w integer
---@param n? integer  how many values (default #values)
---@return string
function M.sparkline(values, w, n)
  n = n or #values
  if n == 0 then
    return ""
  end
  local cols = min(w, n)
  local means, lo, hi = {}, nil, nil
  for c = 1, cols do
    local a, b = floor((c - 1) * n / cols) + 1, floor(c * n / cols)
    local sum, k = 0, 0
    for i = a, b do
      local v = values[i]
      if finite(v) then
        sum, k = sum + v, k + 1
      end
    end
    if k > 0 then
      local m = sum / k
      means[c] = m
      lo, hi = lo and min(lo, m) or m, hi and max(hi, m) or m
    end
  end
  local out = {}
  for c = 1, cols do
    local m = means[c]
    if not m then
      out[c] = " "
    elseif hi == lo then
      out[c] = SPARKS[4]
    else
      out[c] = SPARKS[floor((m - lo) / (hi - lo) * 7 + 0.5) + 1]
    end
  end
  return concat(out)
end

-- The values a chart block's sparkline shows, with a caption.
local function spark_of(b)
  if b.spark then
    local o = b.options or {}
    local n = 0
    for k in pairs(b.spark) do
      if type(k) == "number" and k > n then
        n = k
      end
    end
    if o.series and o.series[1] and o.series[1].n then
      n = max(n, o.series[1].n)
    end
    local lo, hi
    for i = 1, n do
      local v = b.spark[i]
      if finite(v) then
        lo, hi = lo and min(lo, v) or v, hi and max(hi, v) or v
      end
    end
    if not lo then
      return nil
    end
    local f = b.spark_format or function(v)
      return fmt.num(v, 3)
    end
    return b.spark, n, escape.str(b.label or o.title or "trend"), format("%s – %s", f(lo), f(hi))
  end
  if b.chart == "histogram" and b.options and b.options.values then
    local counts, edges, n = require("poengine.dashboard.chart").bins(b.options.values, b.options.bins)
    if n == 0 then
      return nil
    end
    local f = b.spark_format or function(v)
      return fmt.num(v, 3)
    end
    return counts, #counts, escape.str(b.label or "distribution"), format("%s – %s", f(edges[1]), f(edges[#edges]))
  end
  return nil
end

-- Text -------------------------------------------------------------------

local function text_kv(b, w, out)
  local items = {}
  local lw, vw = 0, 0
  for i, it in ipairs(b.items) do
    local l, v = escape.text(it[1]), escape.text(it[2])
    items[i] = { l, v }
    lw, vw = max(lw, width(l)), max(vw, width(v))
  end
  local avail = w - 2
  lw = min(lw, floor(avail / 2))
  vw = min(vw, avail - lw - 2)
  local cell = lw + 2 + vw
  local cols = max(1, min(3, floor((avail + 4) / (cell + 4))))
  for i = 1, #items, cols do
    local line = {}
    for j = i, min(i + cols - 1, #items) do
      local it = items[j]
      line[#line + 1] = pad(truncate(it[1], lw), lw) .. "  " .. pad(truncate(it[2], vw), vw, "right")
    end
    out[#out + 1] = "  " .. concat(line, "    ")
  end
end

local function text_table(b, w, out)
  local ncols = #b.columns
  local titles, aligns, flex, widths = {}, {}, {}, {}
  local any_flex = false
  for j, c in ipairs(b.columns) do
    local t, a, f = column(c)
    titles[j], aligns[j] = escape.text(t), a
    flex[j] = f
    any_flex = any_flex or f
    widths[j] = width(titles[j])
  end
  if not any_flex then
    for j = 1, ncols do
      flex[j] = aligns[j] == "left"
    end
  end
  if b.title then
    out[#out + 1] = "  " .. truncate(escape.text(b.title), w - 2)
  end
  if #b.rows == 0 then
    out[#out + 1] = "  (" .. truncate(escape.text(b.empty or "empty"), w - 6) .. ")"
    return
  end
  local rows = {}
  for i, row in ipairs(b.rows) do
    local r = {}
    for j = 1, ncols do
      r[j] = escape.text(cell_text(row[j]))
      widths[j] = max(widths[j], width(r[j]))
    end
    rows[i] = r
  end
  -- Shrink the flexible columns, widest first, until the table fits.
  local avail = w - 2 - 2 * (ncols - 1)
  local total = 0
  for j = 1, ncols do
    total = total + widths[j]
  end
  while total > avail do
    local widest, at = 0, nil
    for j = 1, ncols do
      if flex[j] and widths[j] > widest and widths[j] > 6 then
        widest, at = widths[j], j
      end
    end
    if not at then
      for j = 1, ncols do
        if widths[j] > widest and widths[j] > 3 then
          widest, at = widths[j], j
        end
      end
    end
    if not at then
      break
    end
    widths[at] = widths[at] - 1
    total = total - 1
  end
  local function line(cells)
    local parts = {}
    for j = 1, ncols do
      parts[j] = pad(truncate(cells[j], widths[j]), widths[j], aligns[j])
    end
    return rstrip("  " .. concat(parts, "  "))
  end
  out[#out + 1] = line(titles)
  local rule = {}
  for j = 1, ncols do
    rule[j] = rep("\226\148\128", widths[j])
  end
  out[#out + 1] = "  " .. concat(rule, "  ")
  for _, r in ipairs(rows) do
    out[#out + 1] = line(r)
  end
end

local function wrap(text, w, indent)
  local lines, cur = {}, indent
  for word in text:gmatch("%S+") do
    if width(cur) + width(word) + 1 > w and cur ~= indent then
      lines[#lines + 1] = cur
      cur = indent
    end
    cur = cur == indent and cur .. truncate(word, w - #indent) or cur .. " " .. word
  end
  if cur ~= indent then
    lines[#lines + 1] = cur
  end
  return lines
end

--- Text lines for a list of blocks, fitting `ctx.width` columns (default 80).
---@param blocks table[]
---@param ctx table
---@return string
function M.text(blocks, ctx)
  local w = ctx.width or 80
  local out = {}
  for _, b in ipairs(blocks) do
    local kind = b[1]
    if kind == "kv" then
      text_kv(b, w, out)
    elseif kind == "table" then
      text_table(b, w, out)
    elseif kind == "chart" then
      local values, n, label, range = spark_of(b)
      if values then
        label = truncate(escape.text(label), 16)
        range = escape.text(range)
        local sw = max(8, min(60, w - 2 - 16 - 2 - width(range) - 2))
        out[#out + 1] = "  " .. pad(label, 16) .. "  " .. M.sparkline(values, sw, n) .. "  " .. range
      end
    elseif kind == "note" then
      for _, l in ipairs(wrap(escape.text(b.text), w, "  ")) do
        out[#out + 1] = l
      end
    end
  end
  return concat(out, "\n")
end

-- Markdown ---------------------------------------------------------------

local md = escape.markdown

local function md_row(cells)
  return "| " .. concat(cells, " | ") .. " |"
end

--- GitHub-flavoured Markdown for a list of blocks.
---@param blocks table[]
---@return string
function M.markdown(blocks)
  local out = {}
  for _, b in ipairs(blocks) do
    local kind = b[1]
    if kind == "kv" then
      out[#out + 1] = "| | |\n|---|---:|"
      local rows = {}
      for i, it in ipairs(b.items) do
        local v = md(it[2])
        if it[3] then
          v = v .. " (" .. md(it[3]) .. ")"
        end
        rows[i] = md_row { "**" .. md(it[1]) .. "**", v }
      end
      out[#out] = out[#out] .. "\n" .. concat(rows, "\n")
    elseif kind == "table" then
      local lines = {}
      if b.title then
        lines[#lines + 1] = "**" .. md(b.title) .. "**\n"
      end
      if #b.rows == 0 then
        lines[#lines + 1] = "_" .. md(b.empty or "empty") .. "_"
      else
        local head, align = {}, {}
        for j, c in ipairs(b.columns) do
          local t, a = column(c)
          head[j] = md(t)
          align[j] = a == "right" and "---:" or "---"
        end
        lines[#lines + 1] = md_row(head)
        lines[#lines + 1] = md_row(align)
        for _, row in ipairs(b.rows) do
          local cells = {}
          for j = 1, #b.columns do
            cells[j] = md(cell_text(row[j]))
          end
          lines[#lines + 1] = md_row(cells)
        end
      end
      out[#out + 1] = concat(lines, "\n")
    elseif kind == "chart" then
      local values, n, label, range = spark_of(b)
      if values then
        out[#out + 1] = md(label) .. ": `" .. M.sparkline(values, 60, n) .. "` " .. md(range)
      end
    elseif kind == "note" then
      out[#out + 1] = md(b.text)
    end
  end
  return concat(out, "\n\n")
end

-- HTML -------------------------------------------------------------------

local h = escape.html

--- An HTML fragment for a list of blocks (charts as inline SVG).
---@param blocks table[]
---@return string
function M.html(blocks)
  local out = {}
  local chart = require "poengine.dashboard.chart"
  for _, b in ipairs(blocks) do
    local kind = b[1]
    if kind == "kv" then
      if b.tiles then
        out[#out + 1] = '<div class="tiles">'
        for _, it in ipairs(b.items) do
          out[#out + 1] = '<div class="tile"><div class="k">' .. h(it[1]) .. '</div><div class="v">' .. h(it[2])
            .. "</div>" .. (it[3] and ('<div class="hint">' .. h(it[3]) .. "</div>") or "") .. "</div>"
        end
        out[#out + 1] = "</div>"
      else
        out[#out + 1] = '<dl class="kv">'
        for _, it in ipairs(b.items) do
          out[#out + 1] = "<div><dt>" .. h(it[1]) .. "</dt><dd>" .. h(it[2]) .. "</dd></div>"
        end
        out[#out + 1] = "</dl>"
      end
    elseif kind == "table" then
      if b.title then
        out[#out + 1] = "<h3>" .. h(b.title) .. "</h3>"
      end
      if #b.rows == 0 then
        out[#out + 1] = '<p class="empty">' .. h(b.empty or "empty") .. "</p>"
      else
        local aligns = {}
        local head = {}
        for j, c in ipairs(b.columns) do
          local t, a = column(c)
          aligns[j] = a == "right" and ' class="num"' or ""
          head[j] = "<th" .. aligns[j] .. ">" .. h(t) .. "</th>"
        end
        out[#out + 1] = '<div class="table-wrap"><table><thead><tr>' .. concat(head) .. "</tr></thead><tbody>"
        local status = b.status_column
        for _, row in ipairs(b.rows) do
          local cells = {}
          for j = 1, #b.columns do
            local v = h(cell_text(row[j]))
            if j == status then
              v = '<span class="badge ' .. (row[j] == "ok" and "ok" or row[j] == "failed" and "failed" or "active")
                .. '">' .. v .. "</span>"
            end
            cells[j] = "<td" .. aligns[j] .. ">" .. v .. "</td>"
          end
          out[#out + 1] = "<tr>" .. concat(cells) .. "</tr>"
        end
        out[#out + 1] = "</tbody></table></div>"
      end
    elseif kind == "chart" then
      local draw = chart[b.chart]
      if type(draw) ~= "function" then
        error("po.dashboard: unknown chart kind '" .. tostring(b.chart) .. "'", 0)
      end
      out[#out + 1] = '<figure class="chart">' .. draw(b.options or {}) .. "</figure>"
    elseif kind == "note" then
      out[#out + 1] = '<p class="note">' .. h(b.text) .. "</p>"
    end
  end
  return concat(out, "\n")
end

return M
