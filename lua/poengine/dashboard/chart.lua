--- SVG charts as plain strings: line, bar and histogram, with "nice" scales,
--- axes, ticks, grid lines, labels, a legend and tooltips. Pure Lua, no
--- dependency; every text that comes from data is escaped.
---
--- Colours are CSS variables with fallbacks (`var(--po-c1, #2563eb)`), so a
--- chart looks right on its own and follows the page's light or dark theme
--- when it sits in a dashboard.
local escape = require "poengine.dashboard.escape"
local stats = require "poengine.metrics.stats"

local M = {}

local floor, ceil, abs, max, min, log10 = math.floor, math.ceil, math.abs, math.max, math.min, math.log10
local format, concat, type = string.format, table.concat, type
local html = escape.html

local PALETTE = { "#2563eb", "#f59e0b", "#10b981", "#ef4444", "#8b5cf6", "#0891b2" }
M.palette = PALETTE

local function colour(i)
  local n = (i - 1) % #PALETTE + 1
  return format("var(--po-c%d, %s)", n, PALETTE[n])
end

local FG = "var(--po-fg, #1f2937)"
local MUTED = "var(--po-muted, #6b7280)"
local GRID = "var(--po-grid, #e5e7eb)"
local CHAR_W = 6.6 -- average width of a 12px sans-serif character, for layout

local finite = stats.finite

-- Option checking: a misspelt option raises, naming the function.
local check_names = require("poengine.util.options").check

local function check_opts(fname, opts, known)
  if type(opts) ~= "table" then
    error(fname .. ": expected a table of options, got " .. type(opts), 3)
  end
  check_names(fname, opts, known, 3)
end

local function set(list)
  local s = {}
  for _, k in ipairs(list) do
    s[k] = true
  end
  return s
end

local COMMON = { "title", "width", "height", "x_label", "y_label", "x_format", "y_format", "y_min", "y_max",
  "class", "empty" }

local function nice_num(range, round)
  local e = floor(log10(range))
  local f = range / 10 ^ e
  local nf
  if round then
    nf = f < 1.5 and 1 or f < 3 and 2 or f < 7 and 5 or 10
  else
    nf = f <= 1 and 1 or f <= 2 and 2 or f <= 5 and 5 or 10
  end
  return nf * 10 ^ e
end

--- Nice axis bounds and tick step for data in [lo, hi] with about n ticks:
--- returns lo', hi', step with lo' <= lo, hi' >= hi, all multiples of step.
---@param lo number
---@param hi number
---@param n? integer   default 5
---@return number, number, number
function M.ticks(lo, hi, n)
  n = n or 5
  if not (finite(lo) and finite(hi)) then
    return 0, 1, 0.2
  end
  if lo > hi then
    lo, hi = hi, lo
  end
  if hi == lo then
    local pad = lo == 0 and 1 or abs(lo) * 0.1
    lo, hi = lo - pad, hi + pad
  end
  local step = nice_num(nice_num(hi - lo, false) / max(n - 1, 1), true)
  local nlo, nhi = floor(lo / step + 1e-9) * step, ceil(hi / step - 1e-9) * step
  return nlo, nhi, step
end

-- Tick label text: as many decimals as the step needs.
local function tick_formatter(step)
  local decimals = -floor(log10(step) + 1e-9)
  if decimals <= 0 then
    decimals = 0 -- and not -0, which would print as "-0"
  end
  return function(v)
    if abs(v) < step * 1e-9 then
      v = 0
    end
    if decimals == 0 and abs(v) >= 1e4 then
      return require("poengine.dashboard.fmt").num(v, 3)
    end
    return format("%." .. decimals .. "f", v)
  end
end

local function svg_open(out, w, h, title, class)
  out[#out + 1] = format(
    '<svg xmlns="http://www.w3.org/2000/svg" class="po-chart%s" viewBox="0 0 %d %d" width="%d" height="%d" role="img" aria-label="%s" style="font-family:system-ui,-apple-system,\'Segoe UI\',Roboto,sans-serif;font-size:12px">',
    class and (" " .. html(class)) or "", w, h, w, h, html(title or "chart"))
  if title then
    out[#out + 1] = "<title>" .. html(title) .. "</title>"
    out[#out + 1] = format('<text x="0" y="16" style="fill:%s;font-size:14px;font-weight:600">%s</text>', FG,
      html(title))
  end
end

local function text_at(out, x, y, s, anchor, style)
  out[#out + 1] = format('<text x="%.1f" y="%.1f" text-anchor="%s" style="fill:%s%s">%s</text>', x, y, anchor,
    MUTED, style or "", html(s))
end

-- The frame every chart shares: plot area, y grid and labels, axis titles.
-- Returns the plot rectangle and the y scale.
local function frame(out, o, ylo, yhi, ystep, yfmt)
  local w, h = o.width, o.height
  local ylabels, widest = {}, 0
  for v = ylo, yhi + ystep * 0.5, ystep do
    local s = yfmt(v)
    ylabels[#ylabels + 1] = { v, s }
    widest = max(widest, #s)
  end
  local left = floor(widest * CHAR_W + 12 + (o.y_label and 18 or 0))
  local top = (o.title or o.legend) and 30 or 10
  local bottom = 22 + (o.x_label and 18 or 0)
  local right = 14
  local pw, ph = w - left - right, h - top - bottom
  local function sy(v)
    return top + ph - (v - ylo) / (yhi - ylo) * ph
  end
  for _, l in ipairs(ylabels) do
    local y = sy(l[1])
    out[#out + 1] = format('<line x1="%d" y1="%.1f" x2="%d" y2="%.1f" style="stroke:%s;stroke-width:1"/>', left, y,
      left + pw, y, GRID)
    text_at(out, left - 6, y + 4, l[2], "end")
  end
  out[#out + 1] = format('<line x1="%d" y1="%d" x2="%d" y2="%d" style="stroke:%s;stroke-width:1"/>', left, top + ph,
    left + pw, top + ph, MUTED)
  if o.y_label then
    out[#out + 1] = format(
      '<text transform="translate(12 %.1f) rotate(-90)" text-anchor="middle" style="fill:%s">%s</text>',
      top + ph / 2, MUTED, html(o.y_label))
  end
  if o.x_label then
    text_at(out, left + pw / 2, h - 4, o.x_label, "middle")
  end
  return { left = left, top = top, w = pw, h = ph }, sy
end

local function empty_note(out, plot, text)
  text_at(out, plot.left + plot.w / 2, plot.top + plot.h / 2, text or "no data", "middle", ";font-style:italic")
end

-- A copy of the caller's options with the defaults filled in.
local function defaults(opts, w, h)
  local o = {}
  for k, v in pairs(opts) do
    o[k] = v
  end
  o.width = o.width or w
  o.height = o.height or h
  if type(o.width) ~= "number" or type(o.height) ~= "number" or o.width < 120 or o.height < 80 then
    error("po.dashboard.chart: width and height must be numbers of at least 120 and 80", 3)
  end
  return o
end

-- x tick labels along the bottom of the plot.
local function x_ticks(out, plot, xlo, xhi, xstep, xfmt)
  local sx = function(v)
    return plot.left + (v - xlo) / (xhi - xlo) * plot.w
  end
  local labels, widest = {}, 0
  for v = xlo, xhi + xstep * 0.5, xstep do
    local s = xfmt(v)
    labels[#labels + 1] = { v, s }
    widest = max(widest, #s)
  end
  -- Skip labels that would overlap.
  local every = max(1, ceil(#labels * (widest * CHAR_W + 10) / plot.w))
  for i, l in ipairs(labels) do
    local x = sx(l[1])
    out[#out + 1] = format('<line x1="%.1f" y1="%d" x2="%.1f" y2="%d" style="stroke:%s;stroke-width:1"/>', x,
      plot.top + plot.h, x, plot.top + plot.h + 4, MUTED)
    if (i - 1) % every == 0 then
      text_at(out, x, plot.top + plot.h + 16, l[2], "middle")
    end
  end
  return sx
end

local function names_of(s, j)
  return escape.str(s.name or ("series " .. j))
end

local function legend(out, o, names, pick)
  if #names < 2 then
    return
  end
  local x = o.width - 4
  for i = #names, 1, -1 do
    local name = names[i]
    local tw = #name * CHAR_W
    x = x - tw
    out[#out + 1] = format('<text x="%.1f" y="16" style="fill:%s">%s</text>', x, MUTED, html(name))
    x = x - 16
    out[#out + 1] = format('<rect x="%.1f" y="8" width="12" height="4" rx="1" style="fill:%s"/>', x,
      colour(pick and pick(i) or i))
    x = x - 12
  end
end

-- Keeps a long series drawable: per pixel column, the first, lowest, highest
-- and last points, in order (the shape survives; 10,000 points become at
-- most 4 per column).
local function decimate(xs, ys, n, sx, columns)
  if n <= columns * 4 then
    return xs, ys, n
  end
  local ox, oy, m = {}, {}, 0
  local i = 1
  while i <= n do
    local col = floor(sx(xs[i]))
    local first, lo, hi, last = i, nil, nil, i
    local j = i
    while j <= n and floor(sx(xs[j])) == col do
      local y = ys[j]
      if finite(y) then
        if not lo or y < ys[lo] then
          lo = j
        end
        if not hi or y > ys[hi] then
          hi = j
        end
      elseif j > i then
        break -- a gap ends the column so the line breaks there
      end
      last = j
      j = j + 1
    end
    -- The column's first, lowest, highest and last points, in order, each
    -- once; none when it has no finite value (then first == last: a gap).
    -- Sorted by hand, four locals, so that LuaJIT compiles the loop (a
    -- table and a closure per column for table.sort stopped it).
    if lo then
      local a, b, c, d = first, lo, hi, last
      if b < a then a, b = b, a end
      if d < c then c, d = d, c end
      if c < a then a, c = c, a end
      if d < b then b, d = d, b end
      if c < b then b, c = c, b end
      m = m + 1
      ox[m], oy[m] = xs[a], ys[a]
      if b ~= a then
        m = m + 1
        ox[m], oy[m] = xs[b], ys[b]
      end
      if c ~= b then
        m = m + 1
        ox[m], oy[m] = xs[c], ys[c]
      end
      if d ~= c then
        m = m + 1
        ox[m], oy[m] = xs[d], ys[d]
      end
    end
    i = j > i and j or i + 1
  end
  return ox, oy, m
end

--- A line chart of one or more series.
---
--- Options: `series = { { name =, y = {...}, x = {...}?, n =? }, ... }` (or
--- `y = {...}` for one series), `x = {...}` shared x values (default 1..n),
--- `title`, `x_label`, `y_label`, `x_format(v)`, `y_format(v)` (tick label
--- text), `y_min`, `y_max`, `width` (640), `height` (260), `points` (draw a
--- marker with a tooltip at each point; default when at most 60 points),
--- `class`, `empty` (text shown when there is nothing to draw). A value
--- that is not a finite number leaves a gap.
---@param o table
---@return string svg
function M.line(o)
  check_opts("po.dashboard.chart.line", o, set { "series", "x", "y", "points", "x_min", "x_max", unpack(COMMON) })
  o = defaults(o, 640, 260)
  local series = o.series or { { name = o.y_label or "value", y = o.y or {} } }
  local names, xlo, xhi, ylo, yhi, total = {}, nil, nil, o.y_min, o.y_max, 0
  local prepared = {}
  for i, s in ipairs(series) do
    if type(s) ~= "table" or type(s.y) ~= "table" then
      error("po.dashboard.chart.line: series[" .. i .. "].y must be a list of numbers", 2)
    end
    local xs = s.x or o.x
    local n = s.n or #s.y
    local px, py = {}, {}
    for k = 1, n do
      local x = xs and xs[k] or k
      local y = s.y[k]
      px[k], py[k] = x, y
      if finite(x) and finite(y) then
        total = total + 1
        xlo, xhi = xlo and min(xlo, x) or x, xhi and max(xhi, x) or x
        if not o.y_min then
          ylo = ylo and min(ylo, y) or y
        end
        if not o.y_max then
          yhi = yhi and max(yhi, y) or y
        end
      end
    end
    names[i] = escape.str(s.name or ("series " .. i))
    prepared[i] = { x = px, y = py, n = n }
  end
  xlo, xhi = o.x_min or xlo or 0, o.x_max or xhi or 1
  ylo, yhi = ylo or 0, yhi or 1
  local out = {}
  o.legend = #names > 1
  svg_open(out, o.width, o.height, o.title, o.class)
  legend(out, o, names)
  local nylo, nyhi, ystep = M.ticks(ylo, yhi, 5)
  if o.y_min then
    nylo = o.y_min
  end
  if o.y_max then
    nyhi = o.y_max
  end
  local plot, sy = frame(out, o, nylo, nyhi, ystep, o.y_format or tick_formatter(ystep))
  if xlo == xhi then
    xlo, xhi = xlo - 1, xhi + 1
  end
  local nxlo, nxhi, xstep = M.ticks(xlo, xhi, max(2, floor(plot.w / 90)))
  if o.x_min then
    nxlo = o.x_min
  end
  if o.x_max then
    nxhi = o.x_max
  end
  local xfmt = o.x_format or tick_formatter(xstep)
  local yfmt = o.y_format or function(v)
    return require("poengine.dashboard.fmt").num(v, 4)
  end
  local sx = x_ticks(out, plot, nxlo, nxhi, xstep, xfmt)
  if total == 0 then
    empty_note(out, plot, o.empty)
  end
  local show_points = o.points
  if show_points == nil then
    show_points = total <= 60
  end
  for i, s in ipairs(prepared) do
    local xs, ys, n = decimate(s.x, s.y, s.n, sx, plot.w)
    local d, pen = {}, "M"
    for k = 1, n do
      local x, y = xs[k], ys[k]
      if finite(x) and finite(y) then
        d[#d + 1] = format("%s%.1f %.1f", pen, sx(x), sy(y))
        pen = "L"
      else
        pen = "M"
      end
    end
    if #d > 0 then
      out[#out + 1] = format(
        '<path d="%s" style="fill:none;stroke:%s;stroke-width:2;stroke-linejoin:round;stroke-linecap:round"/>',
        concat(d, " "), colour(i))
    end
    if show_points then
      for k = 1, n do
        local x, y = xs[k], ys[k]
        if finite(x) and finite(y) then
          out[#out + 1] = format('<circle cx="%.1f" cy="%.1f" r="3" style="fill:%s"><title>%s: %s, %s</title></circle>',
            sx(x), sy(y), colour(i), html(names[i]), html(xfmt(x)), html(yfmt(y)))
        end
      end
    end
  end
  out[#out + 1] = "</svg>"
  return concat(out)
end

--- A bar chart: one bar per label.
---
--- Options: `labels = {...}`, `values = {...}` (same length), `title`,
--- `x_label`, `y_label`, `y_format(v)`, `y_min`, `y_max`, `width` (640),
--- `height` (260), `class`, `empty`. Bars grow from zero, down for negative
--- values. Each bar has a tooltip; labels that would overlap are thinned.
--- With `series = { { name =, values = {...}, colour = i? }, ... }` instead
--- of `values`, each label's bar stacks the series' (non-negative) values,
--- in order from the bottom, with a legend; `colour` picks the palette
--- entry (default the series' place).
---@param o table
---@return string svg
function M.bar(o)
  check_opts("po.dashboard.chart.bar", o, set { "labels", "values", "series", unpack(COMMON) })
  o = defaults(o, 640, 260)
  local labels = o.labels or {}
  local series = o.series or { { values = o.values or {} } }
  if type(labels) ~= "table" or type(series) ~= "table" then
    error("po.dashboard.chart.bar: labels and values (or series) must be lists", 2)
  end
  local n = #labels
  for _, s in ipairs(series) do
    if type(s) ~= "table" or type(s.values) ~= "table" then
      error("po.dashboard.chart.bar: values (and each series' values) must be lists", 2)
    end
    n = max(n, #s.values)
  end
  local stacked = o.series ~= nil
  -- Each bar's extent: from zero for one series, the sum for stacked ones.
  local ylo, yhi = 0, 0
  for i = 1, n do
    local total = 0
    for _, s in ipairs(series) do
      local v = s.values[i]
      if finite(v) then
        total = stacked and total + max(v, 0) or v
      end
    end
    ylo, yhi = min(ylo, total), max(yhi, total)
  end
  if ylo == yhi then
    yhi = 1
  end
  local out = {}
  svg_open(out, o.width, o.height, o.title, o.class)
  if stacked then
    local names = {}
    for i, s in ipairs(series) do
      names[i] = names_of(s, i)
    end
    legend(out, o, names, function(i) return series[i].colour or i end)
  end
  local nylo, nyhi, ystep = M.ticks(o.y_min or ylo, o.y_max or yhi, 5)
  local yfmt = o.y_format or tick_formatter(ystep)
  local plot, sy = frame(out, o, nylo, nyhi, ystep, yfmt)
  if n == 0 then
    empty_note(out, plot, o.empty)
  end
  local slot = plot.w / max(n, 1)
  local bw = max(1, slot * 0.7)
  local widest = 0
  for i = 1, n do
    widest = max(widest, #escape.str(labels[i]))
  end
  local every = max(1, ceil(n * (widest * CHAR_W + 8) / plot.w))
  for i = 1, n do
    local x = plot.left + (i - 1) * slot + (slot - bw) / 2
    local label = escape.str(labels[i])
    local base = 0
    for j, s in ipairs(series) do
      local v = s.values[i]
      if finite(v) and not (stacked and v <= 0) then
        local from, to = sy(base), sy(stacked and base + v or v)
        local tip = stacked and (html(label) .. " " .. html(names_of(s, j)) .. ": " .. html(yfmt(v)))
          or (html(label) .. ": " .. html(yfmt(v)))
        out[#out + 1] = format(
          '<rect x="%.1f" y="%.1f" width="%.1f" height="%.1f"%s style="fill:%s"><title>%s</title></rect>', x,
          min(from, to), bw, max(abs(from - to), 0.5), stacked and "" or ' rx="2"', colour(s.colour or j), tip)
        base = stacked and base + v or base
      end
    end
    if (i - 1) % every == 0 then
      text_at(out, x + bw / 2, plot.top + plot.h + 16, label, "middle")
    end
  end
  out[#out + 1] = "</svg>"
  return concat(out)
end

--- Bins `values` (non-numbers are skipped) into `bins` equal bins over
--- [min, max]; with `bins` nil, the Freedman–Diaconis rule picks about how
--- many (Sturges' when the quartiles coincide; at most 40) and the edges
--- fall on round numbers.
--- Returns `counts`, `edges` (#edges == #counts + 1) and how many values
--- were binned.
---@param values number[]
---@param bins? integer
---@return integer[] counts, number[] edges, integer n
function M.bins(values, bins)
  local xs = {}
  for i = 1, #values do
    local v = values[i]
    if finite(v) then
      xs[#xs + 1] = v
    end
  end
  local n = #xs
  if n == 0 then
    return {}, {}, 0
  end
  for i = 2, n do
    if xs[i] < xs[i - 1] then
      table.sort(xs) -- values that come sorted (often) are not sorted again
      break
    end
  end
  local lo, hi = xs[1], xs[n]
  local counts, edges = {}, {}
  local width
  if hi == lo then
    bins = 1
    local pad = lo == 0 and 0.5 or abs(lo) * 0.05
    lo, hi = lo - pad, hi + pad
    width = hi - lo
  elseif bins then
    width = (hi - lo) / bins
  else
    -- Freedman–Diaconis for the count, then edges on round numbers.
    local iqr = xs[max(1, ceil(n * 0.75))] - xs[max(1, ceil(n * 0.25))]
    local want = iqr > 0 and ceil((hi - lo) / (2 * iqr / n ^ (1 / 3))) or ceil(math.log(n, 2)) + 1
    want = max(1, min(40, want))
    width = nice_num((hi - lo) / want, true)
    lo = floor(lo / width + 1e-9) * width
    bins = max(1, ceil((hi - lo) / width - 1e-9))
    if lo + bins * width <= hi then
      bins = bins + 1
    end
    hi = lo + bins * width
  end
  for b = 1, bins do
    counts[b] = 0
    edges[b] = lo + (b - 1) * width
  end
  edges[bins + 1] = hi
  for i = 1, n do
    local b = floor((xs[i] - lo) / width) + 1
    if b > bins then
      b = bins
    end
    counts[b] = counts[b] + 1
  end
  return counts, edges, n
end

--- A histogram of `values`.
---
--- Options: `values = {...}`, `bins` (a count; default by the
--- Freedman–Diaconis rule), `title`, `x_label`, `y_label` (default "count"),
--- `x_format(v)` (edge labels), `width` (640), `height` (260), `class`,
--- `empty`. Each bar's tooltip gives its range and count.
---@param o table
---@return string svg
function M.histogram(o)
  check_opts("po.dashboard.chart.histogram", o, set { "values", "bins", unpack(COMMON) })
  o = defaults(o, 640, 260)
  if type(o.values or {}) ~= "table" then
    error("po.dashboard.chart.histogram: values must be a list of numbers", 2)
  end
  if o.y_label == nil then
    o.y_label = "count"
  end
  local counts, edges, n = M.bins(o.values or {}, o.bins)
  local top = 1
  for _, c in ipairs(counts) do
    top = max(top, c)
  end
  local out = {}
  svg_open(out, o.width, o.height, o.title, o.class)
  local nylo, nyhi, ystep = M.ticks(0, top, 5)
  ystep = max(ystep, 1)
  nyhi = ceil(nyhi / ystep) * ystep
  local plot, sy = frame(out, o, nylo, nyhi, ystep, o.y_format or tick_formatter(ystep))
  local xfmt = o.x_format or function(v)
    return require("poengine.dashboard.fmt").num(v, 3)
  end
  if n == 0 then
    empty_note(out, plot, o.empty)
    out[#out + 1] = "</svg>"
    return concat(out)
  end
  local bins = #counts
  local bw = plot.w / bins
  local zero = sy(0)
  for b = 1, bins do
    local x = plot.left + (b - 1) * bw
    local y = sy(counts[b])
    out[#out + 1] = format(
      '<rect x="%.1f" y="%.1f" width="%.1f" height="%.1f" style="fill:%s;stroke:var(--po-bg, #ffffff);stroke-width:1"><title>%s – %s: %d</title></rect>',
      x, y, bw, zero - y, colour(1), html(xfmt(edges[b])), html(xfmt(edges[b + 1])), counts[b])
  end
  -- Edge labels, thinned so they do not overlap.
  local widest = 0
  for b = 1, bins + 1 do
    widest = max(widest, #xfmt(edges[b]))
  end
  local every = max(1, ceil((bins + 1) * (widest * CHAR_W + 10) / plot.w))
  for b = 1, bins + 1, every do
    local x = plot.left + (b - 1) * bw
    out[#out + 1] = format('<line x1="%.1f" y1="%d" x2="%.1f" y2="%d" style="stroke:%s;stroke-width:1"/>', x,
      plot.top + plot.h, x, plot.top + plot.h + 4, MUTED)
    text_at(out, x, plot.top + plot.h + 16, xfmt(edges[b]), "middle")
  end
  out[#out + 1] = "</svg>"
  return concat(out)
end

return M
