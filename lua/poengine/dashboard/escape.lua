--- Escaping for every dashboard format: whatever a candidate, a validator or
--- a model wrote (cycle ids, metadata, error messages) must come out as text,
--- never as markup, a table cell boundary, a CSV row break or a terminal
--- control sequence.
---
--- Every function takes any value (nil gives "", other values go through
--- tostring) and returns a string.
local M = {}

local tostring, type = tostring, type
local gsub, find, byte = string.gsub, string.find, string.byte

-- The checks below scan bytes in a loop that LuaJIT compiles, instead of
-- calling string.find with a character class: a pattern match is not
-- compiled, and costs more than scanning a short string (most values, ids
-- and figures, have nothing to escape). The escaping itself, when needed,
-- is still done by gsub.

-- A set of bytes, as a table indexed by byte value.
local function byte_set(chars, from, to)
  local set = {}
  for i = 1, #chars do
    set[byte(chars, i)] = true
  end
  for b = from or 1, to or 0 do
    set[b] = true
  end
  return set
end

local function str(v)
  if v == nil then
    return ""
  end
  if type(v) ~= "string" then
    return tostring(v)
  end
  return v
end
M.str = str

local REPLACEMENT = "\239\191\189" -- U+FFFD

local html_map = {
  ["&"] = "&amp;",
  ["<"] = "&lt;",
  [">"] = "&gt;",
  ['"'] = "&quot;",
  ["'"] = "&#39;",
}
-- C0 controls other than tab, LF and CR, and DEL, are not allowed in HTML text.
for b = 0, 31 do
  if b ~= 9 and b ~= 10 and b ~= 13 then
    html_map[string.char(b)] = REPLACEMENT
  end
end
html_map["\127"] = REPLACEMENT

-- What M.html replaces: the pattern, and the same bytes as a set.
local HTML_SPECIAL = "[&<>\"'%c\127]"
local html_set = byte_set("&<>\"'\127", 0, 31)

--- Text for HTML or SVG content and for quoted attribute values: & < > " '
--- become entities, control characters U+FFFD.
---@param v any
---@return string
function M.html(v)
  local s = str(v)
  for i = 1, #s do
    if html_set[byte(s, i)] then
      return (gsub(s, HTML_SPECIAL, html_map))
    end
  end
  return s
end

local text_map = { ["\n"] = " ", ["\r"] = " ", ["\t"] = " " }

local function escape_text(s)
  if find(s, "[%c\127]") then
    s = gsub(s, "[%c\127]", function(c)
      return text_map[c] or "?"
    end)
  end
  if find(s, "\194[\128-\159]") then
    s = gsub(s, "\194[\128-\159]", "?")
  end
  return s
end

--- Text for a terminal: newlines and tabs become spaces, every other control
--- character (ESC included, so no escape sequence gets through) and the C1
--- controls U+0080–U+009F become "?".
---@param v any
---@return string
function M.text(v)
  local s = str(v)
  -- Clean unless there is a control byte, or a C1 control (0xC2 0x80-0x9F).
  local n = #s
  for i = 1, n do
    local b = byte(s, i)
    if b < 32 or b == 127 or (b == 194 and i < n and byte(s, i + 1) < 160 and byte(s, i + 1) >= 128) then
      return escape_text(s)
    end
  end
  return s
end

local md_map = {
  ["\\"] = "\\\\",
  ["`"] = "\\`",
  ["*"] = "\\*",
  ["_"] = "\\_",
  ["["] = "\\[",
  ["]"] = "\\]",
  ["|"] = "\\|",
  ["~"] = "\\~",
  ["<"] = "&lt;",
  [">"] = "&gt;",
  ["&"] = "&amp;",
}
local MD_SPECIAL = "[\\`*_%[%]|~<>&]"
local md_set = byte_set("\\`*_[]|~<>&")
-- %s: space, \t, \n, \v, \f, \r
local space = byte_set(" \t\n\v\f\r")

--- Inline Markdown text, safe in a GitHub table cell and in a paragraph:
--- `| \ ` * _ [ ] ~` are backslash-escaped, `< > &` become entities (so no
--- HTML tag, autolink or entity is formed), line breaks become spaces, and a
--- leading block marker (`# `, `- `, `+ `, `---`, `===`, `1. `) is escaped so
--- the text cannot start a heading, a list or a rule.
---@param v any
---@return string
function M.markdown(v)
  local s = M.text(v)
  local n = #s
  for i = 1, n do
    if md_set[byte(s, i)] then
      s = gsub(s, MD_SPECIAL, md_map)
      n = #s
      break
    end
  end
  -- A block marker only counts at the start, followed by a space, the end
  -- or more of the same (a heading, a list item, a rule, a setext line).
  local lead = 1
  while lead <= n and space[byte(s, lead)] do
    lead = lead + 1
  end
  local c = byte(s, lead) -- nil past the end
  if c == 35 or c == 45 or c == 43 or c == 61 then -- # - + =
    local after = byte(s, lead + 1)
    if lead == n or space[after] or after == c then
      s = s:sub(1, lead - 1) .. "\\" .. s:sub(lead)
    end
  elseif c and c >= 48 and c <= 57 then
    -- digits, then "." or ")", then the end or a space: an ordered list item
    local mark = lead + 1
    while mark <= n and byte(s, mark) >= 48 and byte(s, mark) <= 57 do
      mark = mark + 1
    end
    local d = byte(s, mark)
    if (d == 46 or d == 41) and (mark == n or space[byte(s, mark + 1)]) then
      s = s:sub(1, mark - 1) .. "\\" .. s:sub(mark)
    end
  end
  return s
end

--- One CSV field (RFC 4180): quoted when it holds a comma, a double quote, CR
--- or LF, with double quotes doubled.
---@param v any
---@return string
function M.csv(v)
  local s = str(v)
  if find(s, ",", 1, true) or find(s, '"', 1, true) or find(s, "\n", 1, true) or find(s, "\r", 1, true) then
    return '"' .. gsub(s, '"', '""') .. '"'
  end
  return s
end

--- A Prometheus label value: backslash, double quote and newline escaped.
---@param v any
---@return string
function M.prometheus_label(v)
  return (gsub(str(v), '[\\"\n]', { ["\\"] = "\\\\", ['"'] = '\\"', ["\n"] = "\\n" }))
end

return M
