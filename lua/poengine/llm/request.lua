--- The normalized LLM request: what a caller may write, checked field by
--- field, and the one form the adapters see (tools, tool_choice,
--- response_format and tool calls in their flat form whatever shape the
--- caller used; OpenAI's shapes are accepted and converted). It knows
--- nothing of what each vendor supports: that is the adapters' job. See
--- docs/scripting.md, "The request".
local po = require "poengine"

local M = {}

local type, pairs, ipairs, tostring, error, pcall = type, pairs, ipairs, tostring, error, pcall
local getmetatable, setmetatable, next = getmetatable, setmetatable, next
local json = po.json

-- Fields of a request and the Lua type each must have (true: checked below).
local FIELDS = {
  model = "string", messages = "table", prompt = "string", system = "string", max_tokens = "number",
  temperature = "number", top_p = "number", stop = true, seed = "number", tools = "table", tool_choice = true,
  response_format = "table", reasoning = "table", extra = "table", stream = "boolean", metadata = "table",
}

-- A mistake in the request: raised as a table so that normalize can say it
-- once, with the caller's function name, at the caller's level.
local function bad(msg)
  error({ msg }, 0)
end

local function want(v, t, where)
  if type(v) ~= t then
    bad(where .. " must be a " .. t .. ", got " .. type(v))
  end
  return v
end

local function opt(v, t, where)
  if v ~= nil then
    want(v, t, where)
  end
  return v
end

-- Raises for a key of t that allowed does not list.
local function only(t, allowed, where)
  for k in pairs(t) do
    if not allowed[k] then
      bad("unknown field '" .. where .. "." .. tostring(k) .. "'")
    end
  end
end

local function list(v, where)
  want(v, "table", where)
  local n = #v
  for k in pairs(v) do
    if type(k) ~= "number" or k < 1 or k > n or k % 1 ~= 0 then
      bad(where .. " must be a list, got a key '" .. tostring(k) .. "'")
    end
  end
  return v
end

---------------------------------------------------------------------------
-- Tools

local TOOL = { name = true, description = true, parameters = true, cache_control = true }

local function tool(t, where)
  want(t, "table", where)
  if t.type ~= nil or t["function"] ~= nil then -- OpenAI's shape
    if t.type ~= "function" then
      bad(where .. ".type must be \"function\", got " .. tostring(t.type))
    end
    only(t, { type = true, ["function"] = true }, where)
    t, where = want(t["function"], "table", where .. ".function"), where .. ".function"
    only(t, { name = true, description = true, parameters = true, strict = true }, where)
    opt(t.strict, "boolean", where .. ".strict")
  else
    only(t, TOOL, where)
  end
  local out = {
    name = want(t.name, "string", where .. ".name"),
    description = opt(t.description, "string", where .. ".description"),
    parameters = opt(t.parameters, "table", where .. ".parameters"),
    cache_control = opt(t.cache_control, "table", where .. ".cache_control"),
  }
  return out
end

local CHOICES = { auto = true, none = true, required = true }

local function tool_choice(v)
  local where = "request.tool_choice"
  if type(v) == "string" then
    if not CHOICES[v] then
      bad(where .. " must be \"auto\", \"none\", \"required\" or { name = ... }, got \"" .. v .. "\"")
    end
    return v
  end
  want(v, "table", where)
  if v.type ~= nil then -- OpenAI's { type = "function", function = { name = } }
    only(v, { type = true, ["function"] = true }, where)
    if v.type ~= "function" then
      bad(where .. ".type must be \"function\", got " .. tostring(v.type))
    end
    want(v["function"], "table", where .. ".function")
    only(v["function"], { name = true }, where .. ".function")
    return { name = want(v["function"].name, "string", where .. ".function.name") }
  end
  only(v, { name = true }, where)
  return { name = want(v.name, "string", where .. ".name") }
end

---------------------------------------------------------------------------
-- Response format and reasoning

local function response_format(v)
  local where = "request.response_format"
  local t = v.type
  if t == "json" or t == "json_object" then
    only(v, { type = true }, where)
    return { type = "json" }
  elseif t == "text" then -- OpenAI's default: no format at all
    only(v, { type = true }, where)
    return nil
  elseif t ~= "json_schema" then
    bad(where .. ".type must be \"json\" or \"json_schema\", got " .. tostring(t))
  end
  if v.json_schema ~= nil then -- OpenAI's shape
    only(v, { type = true, json_schema = true }, where)
    where = where .. ".json_schema"
    v = want(v.json_schema, "table", where)
    only(v, { name = true, schema = true, strict = true, description = true }, where)
  else
    only(v, { type = true, name = true, schema = true, strict = true, description = true }, where)
  end
  return {
    type = "json_schema",
    schema = want(v.schema, "table", where .. ".schema"),
    name = opt(v.name, "string", where .. ".name") or "response",
    strict = opt(v.strict, "boolean", where .. ".strict"),
    description = opt(v.description, "string", where .. ".description"),
  }
end

local EFFORTS = { low = true, medium = true, high = true }

local function reasoning(v)
  local where = "request.reasoning"
  only(v, { effort = true, budget_tokens = true }, where)
  if v.effort == nil and v.budget_tokens == nil then
    bad(where .. " needs effort or budget_tokens")
  end
  if v.effort ~= nil and not EFFORTS[v.effort] then
    bad(where .. ".effort must be \"low\", \"medium\" or \"high\", got " .. tostring(v.effort))
  end
  local b = v.budget_tokens
  if b ~= nil and (type(b) ~= "number" or b < 1 or b % 1 ~= 0) then
    bad(where .. ".budget_tokens must be a whole number of tokens, got " .. tostring(b))
  end
  return { effort = v.effort, budget_tokens = b }
end

---------------------------------------------------------------------------
-- Messages

-- "data:image/png;base64,AAAA" → "AAAA", "image/png"; nil for any other URL.
local function data_url(url)
  local media_type, data = url:match("^data:([^;,]+);base64,(.*)$")
  return data, media_type
end

local function image(p, where, url)
  local out = { type = "image", cache_control = p.cache_control }
  if url ~= nil then
    want(url, "string", where .. ".url")
    local data, media_type = data_url(url)
    if data then
      out.data, out.media_type = data, media_type
    else
      out.url = url
    end
  else
    out.data = want(p.data, "string", where .. ".data (or .url)")
    out.media_type = want(p.media_type, "string", where .. ".media_type")
  end
  return out
end

local function part(p, where)
  want(p, "table", where)
  opt(p.cache_control, "table", where .. ".cache_control")
  local t = p.type
  if t == "text" then
    only(p, { type = true, text = true, cache_control = true }, where)
    return { type = "text", text = want(p.text, "string", where .. ".text"), cache_control = p.cache_control }
  elseif t == "image" then
    only(p, { type = true, url = true, data = true, media_type = true, cache_control = true }, where)
    if p.url ~= nil and p.data ~= nil then
      bad(where .. ": give url or data, not both")
    end
    return image(p, where, p.url)
  elseif t == "image_url" then -- OpenAI's { type = "image_url", image_url = { url = } }
    only(p, { type = true, image_url = true, cache_control = true }, where)
    want(p.image_url, "table", where .. ".image_url")
    return image(p, where, p.image_url.url)
  end
  bad(where .. ".type must be \"text\" or \"image\", got " .. tostring(t))
end

local function content(c, where, required)
  if c == nil then
    if required then
      bad(where .. " is required")
    end
    return nil
  end
  if type(c) == "string" then
    return c
  end
  if type(c) ~= "table" then
    bad(where .. " must be a string or a list of parts, got " .. type(c))
  end
  list(c, where)
  local out = {}
  for i, p in ipairs(c) do
    out[i] = part(p, where .. "[" .. i .. "]")
  end
  return out
end

-- A tool call of an assistant turn, with both arguments (a table) and
-- arguments_json (its text), whichever the caller gave.
local function tool_call(tc, where)
  want(tc, "table", where)
  local id, name, args, args_json
  if tc["function"] ~= nil then -- OpenAI's { id, type = "function", function = { name, arguments } }
    only(tc, { id = true, type = true, ["function"] = true }, where)
    local fn = want(tc["function"], "table", where .. ".function")
    only(fn, { name = true, arguments = true }, where .. ".function")
    id, name = tc.id, want(fn.name, "string", where .. ".function.name")
    args_json = want(fn.arguments, "string", where .. ".function.arguments")
  else
    only(tc, { id = true, name = true, arguments = true, arguments_json = true }, where)
    id, name = tc.id, want(tc.name, "string", where .. ".name")
    args = opt(tc.arguments, "table", where .. ".arguments")
    args_json = opt(tc.arguments_json, "string", where .. ".arguments_json")
  end
  want(id, "string", where .. ".id")
  if args == nil and args_json == nil then
    args = {}
  end
  if args == nil then
    local decoded, err = json.decode(args_json)
    if type(decoded) ~= "table" then
      bad((where .. ".arguments_json is not a JSON object: " .. tostring(err or args_json)))
    end
    args = decoded
  elseif args_json == nil then
    args_json = json.encode(next(args) == nil and json.object {} or args)
  end
  return { id = id, name = name, arguments = args, arguments_json = args_json }
end

local ROLES = { system = true, user = true, assistant = true, tool = true }

local function message(m, where)
  if type(m) ~= "table" or type(m.role) ~= "string" then
    bad(where .. " must be a table with a string role")
  end
  local role = m.role
  if not ROLES[role] then
    bad(where .. ".role must be \"system\", \"user\", \"assistant\" or \"tool\", got \"" .. role .. "\"")
  end
  if role == "assistant" then
    only(m, { role = true, content = true, tool_calls = true, thinking_blocks = true }, where)
    local out = { role = role, content = content(m.content, where .. ".content", m.tool_calls == nil) }
    if m.thinking_blocks ~= nil then
      -- A response's thinking_blocks, passed back as they came (Anthropic
      -- wants a tool-using turn's thinking, signature and all, unchanged;
      -- other vendors leave them out).
      list(m.thinking_blocks, where .. ".thinking_blocks")
      out.thinking_blocks = m.thinking_blocks
    end
    if m.tool_calls ~= nil then
      list(m.tool_calls, where .. ".tool_calls")
      local calls = {}
      for i, tc in ipairs(m.tool_calls) do
        calls[i] = tool_call(tc, where .. ".tool_calls[" .. i .. "]")
      end
      out.tool_calls = calls
    end
    return out
  elseif role == "tool" then
    only(m, { role = true, content = true, tool_call_id = true }, where)
    return { role = role, tool_call_id = want(m.tool_call_id, "string", where .. ".tool_call_id"),
      content = content(m.content, where .. ".content", true) }
  end
  only(m, { role = true, content = true }, where)
  return { role = role, content = content(m.content, where .. ".content", true) }
end

-- The text of a system message's content (parts joined): the request's
-- system prompt is one string.
local function text_of(c)
  if type(c) == "string" then
    return c
  end
  local out = {}
  for _, p in ipairs(c) do
    if p.type ~= "text" then
      bad("a system message may hold text only")
    end
    out[#out + 1] = p.text
  end
  return table.concat(out, "\n\n")
end

---------------------------------------------------------------------------

local function build(req)
  for k, v in pairs(req) do
    local t = FIELDS[k]
    if not t then
      bad("unknown request field '" .. tostring(k) .. "'")
    end
    if t ~= true and type(v) ~= t then
      bad("request." .. k .. " must be a " .. t .. ", got " .. type(v))
    end
  end
  if req.messages and req.prompt then
    bad("give request.messages or request.prompt, not both")
  end
  if not req.messages and not req.prompt then
    bad("request.messages or request.prompt is required")
  end
  local out = {}
  for k, v in pairs(req) do
    out[k] = v
  end
  local messages, system = {}, req.system
  if req.prompt then
    messages[1] = { role = "user", content = req.prompt }
  else
    list(req.messages, "request.messages")
    for i, m in ipairs(req.messages) do
      local nm = message(m, "request.messages[" .. i .. "]")
      if nm.role == "system" then
        local s = text_of(nm.content)
        system = system and (system .. "\n\n" .. s) or s
      else
        messages[#messages + 1] = nm
      end
    end
  end
  out.prompt = nil
  out.messages = messages
  out.system = system
  local stop = req.stop
  if type(stop) == "string" then
    out.stop = { stop }
  elseif stop ~= nil then
    if type(stop) ~= "table" then
      bad("request.stop must be a string or a list of strings")
    end
    list(stop, "request.stop")
    for i, s in ipairs(stop) do
      want(s, "string", "request.stop[" .. i .. "]")
    end
  end
  if req.tools then
    list(req.tools, "request.tools")
    local tools = {}
    for i, t in ipairs(req.tools) do
      tools[i] = tool(t, "request.tools[" .. i .. "]")
    end
    out.tools = tools
  end
  if req.tool_choice ~= nil then
    out.tool_choice = tool_choice(req.tool_choice)
  end
  if req.response_format then
    out.response_format = response_format(req.response_format)
  end
  if req.reasoning then
    out.reasoning = reasoning(req.reasoning)
  end
  return out
end

--- Checks a request table as the caller wrote it and returns a normalized
--- copy (the caller's tables are not changed): `messages` always present (a
--- `prompt` becomes one user message), `system` one string kept apart
--- (leading or interleaved "system" messages are moved into it), `stop`
--- always a list, tools, tool_choice, response_format and assistant tool
--- calls in their flat form (tool calls with both `arguments` and
--- `arguments_json`), image URLs of the data: scheme split into data and
--- media_type. Raises on a programmer error, naming fname and the field.
---@param fname string the public function the request was given to
---@param req table
---@return table
function M.normalize(fname, req)
  if type(req) ~= "table" then
    error(fname .. ": request must be a table, got " .. type(req), 3)
  end
  local ok, out = pcall(build, req)
  if not ok then
    if type(out) == "table" then
      error(fname .. ": " .. tostring(out[1]), 3)
    end
    error(out, 0)
  end
  return out
end

local ARRAY = getmetatable(json.array {})

-- Whether extra's value v replaces the body's rather than merging into it:
-- a scalar, a list, or anything going onto a scalar.
local function replaces(v, into)
  return type(v) ~= "table" or type(into) ~= "table" or getmetatable(v) == ARRAY or v[1] ~= nil
    or getmetatable(into) == ARRAY or into[1] ~= nil
end

--- Merges a request's `extra` into the wire body an adapter built: an
--- object merged key by key into the body's object of the same name (at
--- any depth), anything else (a scalar, a list) replacing the body's value.
--- Tables of the body on the way are copied, not changed: they may be the
--- request's own.
---@param body table
---@param extra table?
---@return table body
function M.merge_extra(body, extra)
  if extra == nil then
    return body
  end
  local out = setmetatable({}, getmetatable(body))
  for k, v in pairs(body) do
    out[k] = v
  end
  for k, v in pairs(extra) do
    if replaces(v, out[k]) then
      out[k] = v
    else
      out[k] = M.merge_extra(out[k], v)
    end
  end
  return out
end

return M
