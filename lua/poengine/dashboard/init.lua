--- Dashboards: an ordered list of sections over a source (a collector, a
--- store directory, a statistics table or a list of cycle records), drawn in
--- a format (text, markdown, json, csv, html, prometheus, or one a script
--- adds).
---
---   local d = po.dashboard.new(po.metrics.global())
---   print(d:render("text"))
---   d:write("run.html")                 -- the format from the extension
---
--- Scripts add or replace sections with po.dashboard.section{...} and add
--- formats with po.dashboard.format{...}; see docs/dashboards.md.
local escape = require "poengine.dashboard.escape"
local fmt = require "poengine.dashboard.fmt"
local source = require "poengine.dashboard.source"
local blocks = require "poengine.dashboard.blocks"

local M = {}

M.escape = escape
M.fmt = fmt
M.blocks = blocks
M.chart = require "poengine.dashboard.chart"

local type, pairs, ipairs, tostring, pcall = type, pairs, ipairs, tostring, pcall

-- Sections by name, and their order.
local sections, section_order = {}, {}
-- Formats by name, and the format of each file extension.
local formats, by_extension = {}, {}

local check_names = require("poengine.util.options").check

local function check_keys(fname, spec, known)
  if type(spec) ~= "table" then
    error(fname .. ": expected a table, got " .. type(spec), 3)
  end
  check_names(fname, spec, known, 3)
end

local function check_name(fname, name)
  if type(name) ~= "string" or not name:match("^[%w_%-]+$") then
    error(fname .. ": name must be a string of letters, digits, '_' and '-', got " .. tostring(name), 3)
  end
end

local SECTION_KEYS = { name = true, title = true, data = true, view = true, text = true, markdown = true,
  html = true, layout = true, when = true }

--- Adds a section, or replaces the one of the same name (keeping its place).
--- `data(src, options)` returns the section's values (plain Lua values, what
--- the json format writes); `text`, `markdown` and `html`, each
--- `fn(data, ctx) -> string`, draw it in their format; `view(data, ctx)`
--- returns blocks (poengine.dashboard.blocks) that every format draws; with
--- neither, the data is laid out as a key/value list and tables. `layout` is
--- "half" or "full" (the HTML page's grid; default "full"). `when(src)`,
--- if given, says whether a dashboard without a `sections` option shows
--- the section for that source (a section named in `sections` is shown).
---@param spec { name: string, title?: string, data: fun(src: table, options: table): any, view?: function, text?: function, markdown?: function, html?: function, layout?: string, when?: fun(src: table): boolean }
function M.section(spec)
  check_keys("po.dashboard.section", spec, SECTION_KEYS)
  check_name("po.dashboard.section", spec.name)
  if type(spec.data) ~= "function" then
    error("po.dashboard.section: data must be a function(src, options), got " .. type(spec.data), 2)
  end
  for _, k in ipairs { "view", "text", "markdown", "html", "when" } do
    if spec[k] ~= nil and type(spec[k]) ~= "function" then
      error("po.dashboard.section: " .. k .. " must be a function, got " .. type(spec[k]), 2)
    end
  end
  if spec.title ~= nil and type(spec.title) ~= "string" then
    error("po.dashboard.section: title must be a string, got " .. type(spec.title), 2)
  end
  if spec.layout ~= nil and spec.layout ~= "half" and spec.layout ~= "full" then
    error("po.dashboard.section: layout must be \"half\" or \"full\", got " .. tostring(spec.layout), 2)
  end
  local copy = {}
  for k, v in pairs(spec) do
    copy[k] = v
  end
  copy.title = copy.title or spec.name
  if not sections[spec.name] then
    section_order[#section_order + 1] = spec.name
  end
  sections[spec.name] = copy
end

--- Adds a format, or replaces the one of the same name.
--- `render(dashboard, data)` returns the whole document as a string (data:
--- see docs/dashboards.md); `extensions` lists the file extensions that
--- select it in d:write(path).
---@param spec { name: string, render: fun(dashboard: table, data: table): string, extensions?: string[] }
function M.format(spec)
  check_keys("po.dashboard.format", spec, { name = true, render = true, extensions = true })
  check_name("po.dashboard.format", spec.name)
  if type(spec.render) ~= "function" then
    error("po.dashboard.format: render must be a function(dashboard, data), got " .. type(spec.render), 2)
  end
  local exts = spec.extensions or {}
  if type(exts) ~= "table" then
    error("po.dashboard.format: extensions must be a list of strings", 2)
  end
  for _, e in ipairs(exts) do
    if type(e) ~= "string" then
      error("po.dashboard.format: extensions must be a list of strings", 2)
    end
    by_extension[e:gsub("^%.", ""):lower()] = spec.name
  end
  formats[spec.name] = { name = spec.name, render = spec.render, extensions = exts }
end

--- The section names, in their default order.
---@return string[]
function M.sections()
  local list = {}
  for i, name in ipairs(section_order) do
    list[i] = name
  end
  return list
end

--- The format names, sorted.
---@return string[]
function M.formats()
  local list = {}
  for name in pairs(formats) do
    list[#list + 1] = name
  end
  table.sort(list)
  return list
end

--- The format that a file name's extension selects, or nil.
---@param path string
---@return string?
function M.format_for(path)
  local ext = tostring(path):match("%.([%w]+)$")
  return ext and by_extension[ext:lower()] or nil
end

local Dashboard = {}
Dashboard.__index = Dashboard

local NEW_KEYS = { sections = true, title = true, recent = true, width = true, refresh = true }

--- A dashboard over `src`: a collector, a store directory (string), a
--- statistics table (what col:statistics() returns) or a list of cycle
--- records (or `{ cycles = list, statistics = stats }`). Options:
--- `sections` (names, in the order to show; default all), `title`,
--- `recent` (cycles in the recent section, default 10), `width` (text
--- columns, default 80), `refresh` (seconds: the html page reloads itself
--- that often, for a file rewritten while a run goes on).
---@param src any
---@param options? { sections?: string[], title?: string, recent?: integer, width?: integer, refresh?: number }
---@return table dashboard
function M.new(src, options)
  options = options or {}
  check_keys("po.dashboard.new", options, NEW_KEYS)
  local kind = source.kind(src, "po.dashboard.new")
  local names = options.sections
  if names ~= nil then
    if type(names) ~= "table" then
      error("po.dashboard.new: sections must be a list of section names", 2)
    end
    for _, name in ipairs(names) do
      if not sections[name] then
        error("po.dashboard.new: unknown section '" .. tostring(name) .. "' (known: "
          .. table.concat(section_order, ", ") .. ")", 2)
      end
    end
  end
  if options.recent ~= nil and (type(options.recent) ~= "number" or options.recent < 0) then
    error("po.dashboard.new: recent must be a non-negative number", 2)
  end
  if options.width ~= nil and (type(options.width) ~= "number" or options.width < 40) then
    error("po.dashboard.new: width must be a number of at least 40", 2)
  end
  if options.refresh ~= nil and (type(options.refresh) ~= "number" or options.refresh < 1) then
    error("po.dashboard.new: refresh must be a number of seconds, at least 1", 2)
  end
  if options.title ~= nil and type(options.title) ~= "string" then
    error("po.dashboard.new: title must be a string", 2)
  end
  return setmetatable({
    src = src,
    kind = kind,
    section_names = names,
    title = options.title or "poengine dashboard",
    options = { recent = options.recent or 10, width = options.width or 80, refresh = options.refresh },
  }, Dashboard)
end

local function first_line(msg)
  return (tostring(msg):match("^[^\n]*"))
end

--- Reads the source and returns `{ title, generated_at, source, options,
--- sections = { { name, title, layout, data, error, spec }, ... } }`, or
--- nil, message, code when the source cannot be read. `sections` is
--- computed when first read, so a format that only needs the source (csv,
--- prometheus) does not pay for it. A section whose data function raises
--- gets `error` (the message) instead of `data`; the others are unaffected.
---@return table|nil data, string? err, string? code
function Dashboard:data()
  local src, err, code = source.load(self.src, self.kind)
  if not src then
    return nil, err, code
  end
  local names, options = self.section_names or section_order, self.options
  local chosen = self.section_names ~= nil
  local function compute()
    local list = {}
    for _, name in ipairs(names) do
      local spec = sections[name]
      if spec and (chosen or not spec.when or spec.when(src)) then
        local ok, value = xpcall(spec.data, debug.traceback, src, options)
        list[#list + 1] = {
          name = name,
          title = spec.title,
          layout = spec.layout or "full",
          data = ok and value or nil,
          error = not ok and first_line(value) or nil,
          spec = spec,
        }
      end
    end
    return list
  end
  return setmetatable({
    title = self.title,
    generated_at = require("poengine").time(),
    source = src,
    options = options,
  }, {
    __index = function(t, k)
      if k == "sections" then
        local list = compute()
        rawset(t, "sections", list)
        return list
      end
    end,
  })
end

--- One section drawn in one of the built-in kinds of output ("text",
--- "markdown" or "html"): through the section's own function for it, else
--- its view's blocks, else blocks laid out from its data. A section that
--- failed, or whose drawing raises, draws as a one-line note of the error.
---@param section table   an entry of data.sections
---@param kind "text"|"markdown"|"html"
---@param ctx table       { width =, source =, dashboard = }
---@return string
function Dashboard:section_output(section, kind, ctx)
  local spec = section.spec
  local c = { width = ctx.width, source = ctx.source, dashboard = self, format = kind, section = section,
    escape = escape, fmt = fmt }
  local function draw()
    if spec[kind] then
      return spec[kind](section.data, c)
    end
    local b = spec.view and spec.view(section.data, c) or blocks.auto(section.data)
    return blocks[kind](b, c)
  end
  local err = section.error
  if not err then
    local ok, out = xpcall(draw, debug.traceback)
    if ok then
      return tostring(out or "")
    end
    err = first_line(out)
  end
  return blocks[kind]({ { "note", text = "section '" .. section.name .. "' failed: " .. err } }, c)
end

local function format_of(name, fname)
  local f = formats[name]
  if not f then
    error(fname .. ": unknown format '" .. tostring(name) .. "' (known: " .. table.concat(M.formats(), ", ")
      .. ")", 3)
  end
  return f
end

--- The dashboard as a string in `format` (default "text"), or nil,
--- message, code when the source cannot be read.
---@param format? string
---@return string|nil text, string? err, string? code
function Dashboard:render(format)
  local f = format_of(format or "text", "po.dashboard:render")
  local data, err, code = self:data()
  if not data then
    return nil, err, code
  end
  return f.render(self, data)
end

--- Writes the dashboard to `path` in `format` (default: the one its
--- extension selects). The file is replaced whole and durably
--- (po.write_file), so a reader never sees half a dashboard. Returns true,
--- or nil, message, code.
---@param path string
---@param format? string
---@return true|nil ok, string? err, string? code
function Dashboard:write(path, format)
  if type(path) ~= "string" or path == "" then
    error("po.dashboard:write: path must be a non-empty string", 2)
  end
  format = format or M.format_for(path)
  if not format then
    error("po.dashboard:write: cannot tell the format from '" .. path .. "'; pass one (known: "
      .. table.concat(M.formats(), ", ") .. ")", 2)
  end
  format_of(format, "po.dashboard:write")
  local text, err, code = self:render(format)
  if not text then
    return nil, err, code
  end
  local ok, werr = require("poengine_core").write_file(path, text)
  if not ok then
    return nil, "po.dashboard:write: " .. werr:gsub("^po%.write_file: ", ""), "EIO"
  end
  return true
end

M.Dashboard = Dashboard

for _, spec in ipairs(require("poengine.dashboard.sections").list) do
  M.section(spec)
end
for _, spec in ipairs(require("poengine.dashboard.formats").list) do
  M.format(spec)
end

return M
