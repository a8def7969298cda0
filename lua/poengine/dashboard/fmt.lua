--- Number and time formatting for dashboards, and display width of UTF-8
--- text. Values that are not numbers (nil, po.json.null) format as "–".
local M = {}

local floor, abs, huge = math.floor, math.abs, math.huge
local format, sub, byte, find, rep = string.format, string.sub, string.byte, string.find, string.rep
local concat, log10 = table.concat, math.log10
local type = type

local DASH = "\226\128\147" -- "–"
M.none = DASH

-- "%.0f" .. "%.20f", made once.
local FIXED = {}
for d = 0, 20 do
  FIXED[d] = "%." .. d .. "f"
end

local function isnum(x)
  return type(x) == "number" and x == x and x ~= huge and x ~= -huge
end
M.isnum = isnum

--- An integer with thousands separators: 1234567 -> "1,234,567".
---@param x number?
---@return string
function M.int(x)
  if not isnum(x) then
    return DASH
  end
  local s = format("%d", floor(x + 0.5))
  local len = #s
  if len <= 3 or (len == 4 and byte(s, 1) == 45) then -- at most three digits, with a "-"
    return s
  end
  local sign, digits = "", s
  if byte(s, 1) == 45 then
    sign, digits = "-", sub(s, 2)
  end
  local head = #digits % 3
  local out = head > 0 and { sub(digits, 1, head) } or {}
  for i = head + 1, #digits, 3 do
    out[#out + 1] = sub(digits, i, i + 2)
  end
  return sign .. concat(out, ",")
end

--- A number with about `digits` significant digits (default 3), no
--- exponent for everyday magnitudes: 0.000123 -> "0.000123", 1234.5 -> "1,235".
---@param x number?
---@param digits? integer
---@return string
function M.num(x, digits)
  if not isnum(x) then
    return DASH
  end
  digits = digits or 3
  local a = abs(x)
  if a == 0 then
    return "0"
  end
  if a >= 10 ^ digits then
    return M.int(x)
  end
  if a < 1e-4 then
    return format("%." .. (digits - 1) .. "e", x)
  end
  local decimals = digits - 1 - floor(log10(a))
  if decimals < 0 then
    decimals = 0
  end
  local s = format(FIXED[decimals] or ("%." .. decimals .. "f"), x)
  if find(s, ".", 1, true) then
    -- Drop trailing zeros, then a trailing point.
    local e = #s
    while byte(s, e) == 48 do
      e = e - 1
    end
    if byte(s, e) == 46 then
      e = e - 1
    end
    s = sub(s, 1, e)
  end
  return s
end

--- A count in few characters: 950, 12.3k, 4.57M, 1.2B.
---@param x number?
---@return string
function M.compact(x)
  if not isnum(x) then
    return DASH
  end
  local a = abs(x)
  if a < 1e4 then
    return M.int(x)
  end
  for _, u in ipairs { { 1e9, "B" }, { 1e6, "M" }, { 1e3, "k" } } do
    if a >= u[1] then
      return M.num(x / u[1], 3) .. u[2]
    end
  end
end

--- A ratio 0..1 as a percentage: 0.4567 -> "45.7%".
---@param x number?
---@return string
function M.pct(x)
  if not isnum(x) then
    return DASH
  end
  return format("%.1f%%", x * 100)
end

--- Seconds in the unit that reads best: "850 µs", "12.3 ms", "4.56 s",
--- "3m 05s", "2h 03m".
---@param s number?
---@return string
function M.seconds(s)
  if not isnum(s) then
    return DASH
  end
  local a = abs(s)
  if a == 0 then
    return "0 s"
  elseif a < 1e-3 then
    return M.num(s * 1e6) .. " \194\181s"
  elseif a < 1 then
    return M.num(s * 1e3) .. " ms"
  elseif a < 60 then
    return M.num(s) .. " s"
  elseif a < 3600 then
    local m = floor(a / 60)
    return format("%s%dm %02ds", s < 0 and "-" or "", m, floor(a - m * 60))
  end
  local h = floor(a / 3600)
  return format("%s%dh %02dm", s < 0 and "-" or "", h, floor((a - h * 3600) / 60))
end

--- A speedup with its interval: "1.93x [1.88, 1.99]", "1.93x" without
--- one, a dash without a speedup.
---@param s number?
---@param lo number?
---@param hi number?
---@return string
function M.speedup(s, lo, hi)
  if not isnum(s) then
    return DASH
  end
  local text = M.num(s, 3) .. "x"
  if isnum(lo) and isnum(hi) then
    text = text .. " [" .. M.num(lo, 3) .. ", " .. M.num(hi, 3) .. "]"
  end
  return text
end

--- US dollars: "$0.0123", "$0.456", "$12.35", "$1,234".
---@param x number?
---@return string
function M.money(x)
  if not isnum(x) then
    return DASH
  end
  local a = abs(x)
  local sign = x < 0 and "-" or ""
  if a == 0 then
    return "$0"
  elseif a < 1 then
    return sign .. "$" .. M.num(a, 3)
  elseif a < 1000 then
    return sign .. format("$%.2f", a)
  end
  return sign .. "$" .. M.int(a)
end

-- Days since 1970-01-01 to a proleptic Gregorian date (Howard Hinnant's
-- civil_from_days): plain arithmetic, much cheaper than os.date per row.
local function civil(days)
  local z = days + 719468
  local era = floor(z / 146097)
  local doe = z - era * 146097
  local yoe = floor((doe - floor(doe / 1460) + floor(doe / 36524) - floor(doe / 146096)) / 365)
  local doy = doe - (365 * yoe + floor(yoe / 4) - floor(yoe / 100))
  local mp = floor((5 * doy + 2) / 153)
  local d = doy - floor((153 * mp + 2) / 5) + 1
  local m = mp < 10 and mp + 3 or mp - 9
  return yoe + era * 400 + (m <= 2 and 1 or 0), m, d
end

-- Two- and three-digit fields, and the date of each day seen, made once:
-- rfc3339 then only concatenates (the csv format calls it twice a row).
local two, three, dates = {}, {}, {}
for i = 0, 99 do
  two[i] = format("%02d", i)
end
for i = 0, 999 do
  three[i] = format("%03d", i)
end

--- A Unix time as RFC 3339 UTC with milliseconds: "2026-01-02T03:04:05.678Z".
---@param t number?
---@return string?  nil when t is not a number
function M.rfc3339(t)
  if not isnum(t) then
    return nil
  end
  local ms = floor(t * 1000 + 0.5)
  local whole = floor(ms / 1000)
  ms = ms - whole * 1000
  local days = floor(whole / 86400)
  local secs = whole - days * 86400
  local date = dates[days]
  if not date then
    local y, m, d = civil(days)
    date = format("%04d-%02d-%02dT", y, m, d)
    dates[days] = date
  end
  local h = floor(secs / 3600)
  local mi = floor((secs - h * 3600) / 60)
  return date .. two[h] .. ":" .. two[mi] .. ":" .. two[secs - h * 3600 - mi * 60] .. "." .. three[ms] .. "Z"
end

--- A Unix time for people: "2026-01-02 03:04:05 UTC".
---@param t number?
---@return string
function M.datetime(t)
  if not isnum(t) then
    return DASH
  end
  return os.date("!%Y-%m-%d %H:%M:%S UTC", floor(t))
end

-- The text of whole numbers 1..SMALL, made on first use.
local SMALL, small = 65536, {}

--- A number written so that it reads back as the same double, integers
--- without a decimal point; "" for a value that is not a finite number.
--- It is the shortest such text whenever the number has a short decimal
--- form (0.1, 2.5e-05): 17 significant digits are always exact, and only
--- when those end in a run of 0s or 9s (the mark of a short decimal) are 15
--- and 16 digits tried. Other numbers keep their 17 digits: one format call
--- instead of three, which is what makes the csv format fast.
---@param x number?
---@return string
function M.exact(x)
  if not isnum(x) then
    return ""
  end
  if x == floor(x) and abs(x) < 1e14 then
    -- LuaJIT writes these exactly, without a format call; small counts
    -- (most figures of a record) are written once and looked up.
    if x > 0 and x <= SMALL then
      local s = small[x]
      if not s then
        s = tostring(x)
        small[x] = s
      end
      return s
    end
    return tostring(x)
  elseif x == floor(x) and abs(x) < 2 ^ 53 then
    return format("%d", x)
  end
  local s = format("%.17g", x)
  if find(s, "00000", 1, true) or find(s, "99999", 1, true) then
    local short = format("%.15g", x)
    if tonumber(short) == x then
      return short
    end
    short = format("%.16g", x)
    if tonumber(short) == x then
      return short
    end
  end
  return s
end

--- Display width of a UTF-8 string: one column per code point.
---@param s string
---@return integer
function M.width(s)
  -- A loop LuaJIT compiles (a gsub over a character class is not).
  local n = #s
  local w = n
  for i = 1, n do
    local b = byte(s, i)
    if b >= 128 and b < 192 then
      w = w - 1
    end
  end
  return w
end

--- s cut to at most `w` columns, ending in "…" when it was cut.
---@param s string
---@param w integer
---@return string
function M.truncate(s, w)
  if M.width(s) <= w then
    return s
  end
  if w <= 0 then
    return ""
  end
  -- Walk code points until w - 1 columns are taken, then add the ellipsis.
  local cols, i, n = 0, 1, #s
  while i <= n and cols < w - 1 do
    local c = byte(s, i)
    local len = c < 0x80 and 1 or c >= 0xF0 and 4 or c >= 0xE0 and 3 or c >= 0xC0 and 2 or 1
    i = i + len
    cols = cols + 1
  end
  return sub(s, 1, i - 1) .. "\226\128\166"
end

--- s padded with spaces to `w` columns, on the right (align "left", the
--- default) or on the left (align "right").
---@param s string
---@param w integer
---@param align? "left"|"right"
---@return string
function M.pad(s, w, align)
  local fill = w - M.width(s)
  if fill <= 0 then
    return s
  end
  if align == "right" then
    return rep(" ", fill) .. s
  end
  return s .. rep(" ", fill)
end

return M
