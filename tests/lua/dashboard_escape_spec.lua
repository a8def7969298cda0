-- The dashboard's escaping and formatting scan bytes in loops LuaJIT
-- compiles, instead of matching character classes: this checks them against
-- the same rules written as Lua patterns, over generated strings that hold
-- every kind of byte they treat specially (controls, C1 controls in UTF-8,
-- Markdown markers, HTML and CSV specials, multi-byte characters).
local escape = require "poengine.dashboard.escape"
local fmt = require "poengine.dashboard.fmt"

-- ---- the rules, as patterns ------------------------------------------------

local html_map = { ["&"] = "&amp;", ["<"] = "&lt;", [">"] = "&gt;", ['"'] = "&quot;", ["'"] = "&#39;" }
for b = 0, 31 do
  if b ~= 9 and b ~= 10 and b ~= 13 then
    html_map[string.char(b)] = "\239\191\189"
  end
end
html_map["\127"] = "\239\191\189"

local function ref_html(s)
  return (s:gsub("[&<>\"'%c\127]", html_map))
end

local text_map = { ["\n"] = " ", ["\r"] = " ", ["\t"] = " " }

local function ref_text(s)
  s = s:gsub("[%c\127]", function(c)
    return text_map[c] or "?"
  end)
  return (s:gsub("\194[\128-\159]", "?"))
end

local md_map = { ["\\"] = "\\\\", ["`"] = "\\`", ["*"] = "\\*", ["_"] = "\\_", ["["] = "\\[", ["]"] = "\\]",
  ["|"] = "\\|", ["~"] = "\\~", ["<"] = "&lt;", [">"] = "&gt;", ["&"] = "&amp;" }

local function ref_markdown(s)
  s = ref_text(s):gsub("[\\`*_%[%]|~<>&]", md_map)
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

local function ref_csv(s)
  if s:find('[,"\r\n]') then
    return '"' .. s:gsub('"', '""') .. '"'
  end
  return s
end

local function ref_width(s)
  local _, cont = s:gsub("[\128-\191]", "")
  return #s - cont
end

-- ---- generated strings -----------------------------------------------------

local PIECES = { "a", "Z", "0", "7", "12", " ", "  ", "\t", "\n", "\r", "\v", "\f", "\0", "\1", "\27", "\31",
  "\127", "\126", "#", "-", "+", "=", ".", ")", "&", "<", ">", '"', "'", ",", "\\", "`", "*", "_", "[", "]", "|",
  "~", "\194\128", "\194\159", "\194\160", "\194\181", "\195\169", "\226\128\147", "\240\159\152\128",
  "\194", "\128", "\255" }

local function rng(seed)
  local state = seed
  return function(n)
    state = (state * 48271) % 2147483647
    return 1 + state % n
  end
end

local function strings(count, seed)
  local pick = rng(seed)
  local list = { "", " ", "1.", "1)", "12. x", "3)x", "# x", "#", "-", "--", "+ a", "==", "  - x", " 1. y",
    "cycle-0001", "45.7%", "$0.0123" }
  for _ = 1, count do
    local parts = {}
    for j = 1, pick(8) - 1 do
      parts[j] = PIECES[pick(#PIECES)]
    end
    list[#list + 1] = table.concat(parts)
  end
  return list
end

describe("dashboard escaping and formatting", function()
  it("escapes as the pattern rules do", function()
    for _, s in ipairs(strings(20000, 3)) do
      assert.are.equal(ref_html(s), escape.html(s), ("%q"):format(s))
      assert.are.equal(ref_text(s), escape.text(s), ("%q"):format(s))
      assert.are.equal(ref_markdown(s), escape.markdown(s), ("%q"):format(s))
      assert.are.equal(ref_csv(s), escape.csv(s), ("%q"):format(s))
      assert.are.equal(ref_width(s), fmt.width(s), ("%q"):format(s))
    end
  end)

  it("formats numbers as the pattern rules do", function()
    local function ref_num(x, digits)
      digits = digits or 3
      local a = math.abs(x)
      if a == 0 or a >= 10 ^ digits or a < 1e-4 then
        return nil -- not the path under test
      end
      local decimals = math.max(0, digits - 1 - math.floor(math.log10(a)))
      local s = string.format("%." .. decimals .. "f", x)
      if s:find("%.") then
        s = s:gsub("0+$", ""):gsub("%.$", "")
      end
      return s
    end
    local function ref_int(x)
      local s = string.format("%d", math.floor(x + 0.5))
      local sign, digits = s:match("^(-?)(%d+)$")
      if #digits <= 3 then
        return s
      end
      local head = #digits % 3
      local out = head > 0 and { digits:sub(1, head) } or {}
      for i = head + 1, #digits, 3 do
        out[#out + 1] = digits:sub(i, i + 2)
      end
      return sign .. table.concat(out, ",")
    end
    local pick = rng(5)
    local values = { 1, -1, 0.5, -0.5, 999, -999, 1000, -1000, 999.5, -999.5, 1e15, -1e15, 2 ^ 63, 1e300, -1e300,
      0.001, 0.0001, 0.00999, 9.995, -9.995, 0.1, 100.25 }
    for _ = 1, 5000 do
      local mag = 10 ^ (pick(16) - 6)
      values[#values + 1] = (pick(2) == 1 and -1 or 1) * mag * pick(100000) / 100000
    end
    -- fmt.exact keeps the text of small whole numbers: the same text on
    -- every call, and "-0" stays "-0".
    for _ = 1, 2 do
      for _, x in ipairs { 0, -0.0, 1, 7, 4096, 65535, 65536, 65537, 1e13, -5, 2 ^ 40 } do
        assert.are.equal(tostring(x), fmt.exact(x))
      end
    end
    for _, x in ipairs(values) do
      assert.are.equal(ref_int(x), fmt.int(x), tostring(x))
      for _, digits in ipairs { 1, 3, 4, 6 } do
        local want = ref_num(x, digits)
        if want then
          assert.are.equal(want, fmt.num(x, digits), tostring(x) .. " " .. digits)
        end
      end
    end
  end)
end)
