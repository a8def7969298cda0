--- Helpers shared by the LLM providers, the router and cassettes: request
--- normalization, Retry-After, secret scrubbing.
local po = require "poengine"

local M = {}

local type, pairs, ipairs, tostring, error = type, pairs, ipairs, tostring, error

--- Checks a request and returns its normalized copy (poengine.llm.request).
M.normalize = require("poengine.llm.request").normalize

local MONTHS = { Jan = 1, Feb = 2, Mar = 3, Apr = 4, May = 5, Jun = 6, Jul = 7, Aug = 8, Sep = 9, Oct = 10, Nov = 11, Dec = 12 }

-- Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's days_from_civil).
local function days_from_civil(y, m, d)
  if m <= 2 then
    y = y - 1
  end
  local era = math.floor(y / 400)
  local yoe = y - era * 400
  local mp = (m + 9) % 12
  local doy = math.floor((153 * mp + 2) / 5) + d - 1
  local doe = yoe * 365 + math.floor(yoe / 4) - math.floor(yoe / 100) + doy
  return era * 146097 + doe - 719468
end

--- Unix seconds of an HTTP date ("Sun, 06 Nov 1994 08:49:37 GMT"), or nil.
function M.http_date(s)
  local d, mon, y, hh, mm, ss = s:match("^%a+, (%d%d?) (%a%a%a) (%d%d%d%d) (%d%d):(%d%d):(%d%d) GMT$")
  if not d or not MONTHS[mon] then
    return nil
  end
  return days_from_civil(tonumber(y), MONTHS[mon], tonumber(d)) * 86400 + tonumber(hh) * 3600 + tonumber(mm) * 60
    + tonumber(ss)
end

--- Seconds to wait from a Retry-After header (delta-seconds or an HTTP
--- date), never negative; nil when absent or unreadable.
function M.retry_after(value, now)
  if type(value) ~= "string" then
    return nil
  end
  local secs = tonumber(value:match("^%s*(%d+%.?%d*)%s*$"))
  if secs then
    return secs
  end
  local at = M.http_date(value:match("^%s*(.-)%s*$"))
  if at then
    local left = at - (now or po.time())
    return left > 0 and left or 0
  end
  return nil
end

local function escape_pattern(s)
  return (s:gsub("[%^%$%(%)%%%.%[%]%*%+%-%?]", "%%%0"))
end

-- Vendor key prefixes after "sk-": with one of these, any length is a key.
local KEY_PREFIXES = { "ant-", "proj-", "svcacct-", "admin-", "or-" }

-- Whether the characters after "sk-" look like a key rather than a word:
-- a known vendor prefix, or at least 8 key characters with a digit or a
-- mask "*" among them ("sk-proj-…", "sk-abc***xyz", not "sk-learn").
local function key_like(body)
  for _, prefix in ipairs(KEY_PREFIXES) do
    if body:sub(1, #prefix) == prefix and #body > #prefix then
      return true
    end
  end
  return #body >= 8 and body:find("[%d%*]") ~= nil
end

--- Removes secrets from a message: each given key (a string, or a list of
--- them; those under 4 bytes are ignored) wherever it appears, and anything
--- shaped like a vendor key: "sk-" at the start of a word followed by key
--- characters (masked forms included). "task-1" and "disk-2" are words, not
--- keys, and stay as they are.
---@param text any
---@param keys? string|string[]
function M.scrub(text, keys)
  text = tostring(text)
  if type(keys) ~= "table" then
    keys = { keys }
  end
  for _, key in pairs(keys) do
    if type(key) == "string" and #key >= 4 then
      text = text:gsub(escape_pattern(key), "[redacted]")
    end
  end
  text = text:gsub("%f[%w]sk%-([%w%-_%*%.]+)", function(body)
    local tail = body:match("[%.%-]*$") -- a sentence's full stop is not part of the key
    body = body:sub(1, #body - #tail)
    if key_like(body) then
      return "sk-[redacted]" .. tail
    end
  end)
  return text
end

-- Header names whose values are credentials (matched case-insensitively,
-- anywhere in the name: "X-Api-Key", "Authorization", "X-Auth-Token").
local SECRET_HEADER_WORDS = { "authorization", "key", "token", "secret", "cookie", "password", "signature" }

--- The secrets a provider holds: its key, and the values of its extra
--- headers whose names say they are credentials (with the token of an
--- "Bearer <token>" value on its own too). For scrub.
---@param p table a provider (anything else gives {})
---@return string[]
function M.secrets(p)
  local out = {}
  if type(p) ~= "table" then
    return out
  end
  local key = type(p.key) == "function" and p.key() or nil
  if type(key) == "string" then
    out[#out + 1] = key
  end
  local headers = type(p.extra_headers) == "table" and p.extra_headers or {}
  for name, value in pairs(headers) do
    local lname = tostring(name):lower()
    for _, word in ipairs(SECRET_HEADER_WORDS) do
      if lname:find(word, 1, true) then
        value = tostring(value)
        out[#out + 1] = value
        out[#out + 1] = value:match("^%a+%s+(%S+)%s*$")
        break
      end
    end
  end
  return out
end

-- What the adapters read from a server is checked before it is used: a value
-- of the wrong type is the server's fault, returned as EPROTO, never raised.

local null = po.json.null
local huge, floor = math.huge, math.floor

local function type_name(v)
  if v == null then
    return "null"
  end
  return type(v)
end

--- Reads an optional field of a server's reply: returns the value (nil when
--- absent or JSON null) and true when it is of type want, else nil, false.
---@param v any
---@param want string a Lua type name
function M.want(v, want)
  if v == nil or v == null then
    return nil, true
  end
  if type(v) == want then
    return v, true
  end
  return nil, false
end

--- The EPROTO pair for a field of the wrong type: message, "EPROTO".
---@param where string the field, as the wire format names it
---@param want string what it should have been
---@param v any what it was
function M.bad_shape(where, want, v)
  return "bad reply: " .. where .. " is " .. type_name(v) .. ", not " .. want, "EPROTO"
end

--- True for a token count: a finite, non-negative integer.
function M.is_count(v)
  return type(v) == "number" and v >= 0 and v < huge and v == floor(v)
end

--- Hands a stored answer to on_token as it was streamed: each chunk in
--- turn, pace seconds apart (0: no pause); the whole text in one call when
--- no chunks were kept (an answer that was not streamed).
---@param on_token fun(text: string)
---@param text? string
---@param chunks? string[]
---@param pace number
function M.replay_chunks(on_token, text, chunks, pace)
  if type(chunks) ~= "table" or #chunks == 0 then
    if text and text ~= "" then
      on_token(text)
    end
    return
  end
  for i, chunk in ipairs(chunks) do
    if i > 1 and pace > 0 then
      po.sleep(pace)
    end
    on_token(chunk)
  end
end

--- A deep copy of plain data (tables of strings, numbers, booleans).
function M.copy(v)
  if type(v) ~= "table" then
    return v
  end
  local out = {}
  for k, x in pairs(v) do
    out[k] = M.copy(x)
  end
  return setmetatable(out, getmetatable(v))
end

--- The headers of a JSON request authenticated by a bearer token (OpenAI,
--- and the proxies in front of Ollama); no Authorization without a key.
---@param api_key string?
---@return table
function M.bearer_headers(api_key)
  local headers = { ["Content-Type"] = "application/json" }
  if api_key then
    headers["Authorization"] = "Bearer " .. api_key
  end
  return headers
end

return M
