--- What the provider adds to an adapter's parts on the way to the
--- normalized response: tool calls with both `arguments` (the decoded
--- table) and `arguments_json` (its text) whatever the adapter gave, and
--- `json`, the decoded answer, when the request asked for a format. A reply
--- that breaks either is the server's fault: nil, message, "EPROTO".
local po = require "poengine"

local M = {}

local type, ipairs, tostring, next, getmetatable = type, ipairs, tostring, next, getmetatable
local json = po.json
local ARRAY = getmetatable(json.array {}) -- how the decoder marks a JSON array

local function snippet(s)
  s = tostring(s)
  if #s > 60 then
    return s:sub(1, 60) .. "…"
  end
  return s
end

-- The arguments object of a call from its text ("" counts as no
-- arguments, as some OpenAI-compatible servers send for a tool without
-- parameters); nil, message when it is not a JSON object.
local function decode_args(text)
  if text:match("^%s*$") then
    return {}, "{}"
  end
  local v, err = json.decode(text)
  if type(v) ~= "table" or getmetatable(v) == ARRAY then
    return nil, err or ("not an object: " .. snippet(text))
  end
  return v, text
end

--- The tool calls of parts, each { id, name, arguments, arguments_json };
--- nil, message, "EPROTO" when one is malformed. A call without an id (an
--- Ollama reply, a lua provider's) gets "call_<n>", n counted on from the
--- `before` calls the conversation already holds, so that a tool turn can
--- answer it and no two calls of one conversation share an id.
--- OpenAI's own shape ({ id, function = { name, arguments } }) is read too,
--- for adapters that pass the wire's calls through.
---@param calls table?
---@param before? integer
---@return table? calls
---@return string? message
---@return string? code
function M.tool_calls(calls, before)
  if calls == nil then
    return nil
  end
  local out = {}
  for i, tc in ipairs(calls) do
    local where = "tool_calls[" .. i .. "]"
    if type(tc) ~= "table" then
      return nil, "bad reply: " .. where .. " is " .. type(tc) .. ", not an object", "EPROTO"
    end
    local name, args, args_json = tc.name, tc.arguments, tc.arguments_json
    local fn = tc["function"]
    if name == nil and type(fn) == "table" then
      name = fn.name
      if type(fn.arguments) == "string" then
        args_json = fn.arguments
      else
        args = fn.arguments
      end
    end
    local id = tc.id
    if id == nil or id == json.null then
      id = "call_" .. ((before or 0) + i)
    end
    if type(id) ~= "string" or type(name) ~= "string" then
      return nil, "bad reply: " .. where .. " needs a string id and name", "EPROTO"
    end
    local label = "tool call '" .. name .. "' (" .. id .. ")"
    if type(args_json) == "string" then
      local decoded, text = decode_args(args_json)
      if not decoded then
        return nil, label .. ": arguments are not a JSON object: " .. tostring(text), "EPROTO"
      end
      args, args_json = args or decoded, text
    elseif type(args) == "table" then
      args_json = json.encode(next(args) == nil and json.object {} or args)
    elseif args == nil or args == json.null then
      args, args_json = {}, "{}"
    else
      return nil, label .. ": arguments are " .. type(args) .. ", not an object", "EPROTO"
    end
    out[i] = { id = id, name = name, arguments = args, arguments_json = args_json }
  end
  return out
end

--- How many tool calls the messages of a normalized request hold.
---@param messages table?
---@return integer
function M.count_calls(messages)
  local n = 0
  for _, m in ipairs(messages or {}) do
    if type(m) == "table" and type(m.tool_calls) == "table" then
      n = n + #m.tool_calls
    end
  end
  return n
end

--- The decoded answer of a request that asked for a response_format; nil,
--- "the reply is not JSON: …", "EPROTO" when the text does not parse.
---@param text string
---@param finish_reason string?
function M.json(text, finish_reason)
  local v, err = json.decode(text)
  if v == nil then
    local cut = finish_reason == "length" and " (the reply was cut at max_tokens)" or ""
    return nil, "the reply is not JSON: " .. tostring(err) .. cut .. "; it begins: " .. snippet(text), "EPROTO"
  end
  return v
end

return M
