--- Escaping for every dashboard format: whatever a candidate, a validator or
--- a model wrote (cycle ids, metadata, error messages) must come out as text,
--- never as markup, a table cell boundary, a CSV row break or a terminal
--- control sequence.
---
--- Every function takes any value (nil gives "", other values go through
--- tostring) and returns a string.
local M = {}

local tostring, type = tostring, type
local gsub, find = string.gsub, string.find

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

--- Text for HTML or SVG content and for quoted attribute values: & < > " '
--- become entities, control characters U+FFFD.
---@param v any
---@return string
function M.html(v)
  local s = str(v)
  if not find(s, "[&<>\"'%c\127]") then
    return s
  end
  return (gsub(s, "[&<>\"'%c\127]", html_map))
end

local text_map = { ["\n"] = " ", ["\r"] = " ", ["\t"] = " " }

--- Text for a terminal: newlines and tabs become spaces, every other control
--- character (ESC included, so no escape sequence gets through) and the C1
--- controls U+0080–U+009F become "?".
---@param v any
---@return string
function M.text(v)
  local s = str(v)
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

--- Inline Markdown text, safe in a GitHub table cell and in a paragraph:
--- `| \ ` * _ [ ] ~` are backslash-escaped, `< > &` become entities (so no
--- HTML tag, autolink or entity is formed), line breaks become spaces, and a
--- leading block marker (`# `, `- `, `+ `, `---`, `===`, `1. `) is escaped so
--- the text cannot start a heading, a list or a rule.
---@param v any
---@return string
function M.markdown(v)
  local s = M.text(v)
  if find(s, "[\\`*_%[%]|~<>&]") then
    s = gsub(s, "[\\`*_%[%]|~<>&]", md_map)
  end
  -- A block marker only counts at the start, followed by a space, the end
  -- or more of the same (a heading, a list item, a rule, a setext line).
  local lead = s:match("^%s*()")
  local c = s:sub(lead, lead)
  local marker = c == "#" or c == "-" or c == "+" or c == "="
  if marker and (lead == #s or s:find("^[%s" .. c .. "]", lead + 1)) then
    s = s:sub(1, lead - 1) .. "\\" .. s:sub(lead)
  else
    local mark = s:match("^%d+()[.)]", lead)
    if mark and (mark == #s or s:find("^%s", mark + 1)) then
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
  if find(s, '[,"\r\n]') then
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
