--- po.llm.tool_loop: call a model, run the tools it asks for, give it their
--- results, and call it again until it answers without tool calls.
---
---   local res, err, code = po.llm.tool_loop(router, {
---     prompt = "What is the weather in Paris?",
---     tools = { { name = "weather", parameters = { type = "object", properties = { city = { type = "string" } } } } },
---   }, { weather = function(args) return { city = args.city, celsius = 21 } end })
---   print(res.text, res.steps, #res.messages)
---
--- It works on the normalized conversation only (assistant turns with
--- `tool_calls`, `role = "tool"` turns); each adapter turns that into its
--- vendor's wire form. See docs/scripting.md, "po.llm.tool_loop".
local po = require "poengine"

local M = {}

local type, pairs, ipairs, tostring, error, pcall = type, pairs, ipairs, tostring, error, pcall
local json_encode, json_decode = po.json.encode, po.json.decode

--- The default cap on model calls.
M.MAX_STEPS = 8

local OPTIONS = { max_steps = "number", call = "table" }

-- The text a tool result carries back to the model: a string as it is,
-- anything else as JSON (nil is null).
local function result_text(name, v)
  if type(v) == "string" then
    return v
  end
  if v == nil then
    return "null"
  end
  local ok, text = pcall(json_encode, v, { sort_keys = true })
  if not ok then
    return "error: tool '" .. name .. "' returned a value JSON cannot hold: " .. tostring(text)
  end
  return text
end

-- A tool call in the normalized form, with both arguments (a table) and
-- arguments_json (its text) filled in where they can be, and an id (Ollama
-- sends none). Returns the call and, when the arguments do not decode,
-- the message the model is told instead of running the tool.
local function normalize_call(c, step, i)
  local call = {
    id = type(c.id) == "string" and c.id or ("call_" .. step .. "_" .. i),
    name = tostring(c.name),
    arguments = type(c.arguments) == "table" and c.arguments or nil,
    arguments_json = type(c.arguments_json) == "string" and c.arguments_json or nil,
  }
  local bad
  if not call.arguments and call.arguments_json then
    local v, err = json_decode(call.arguments_json)
    if type(v) == "table" then
      call.arguments = v
    else
      bad = "error: the arguments of tool '" .. call.name .. "' are not a JSON object: " .. tostring(err or v)
    end
  end
  if not call.arguments and not bad then
    call.arguments = po.json.object {}
  end
  if not call.arguments_json and call.arguments then
    call.arguments_json = json_encode(call.arguments, { sort_keys = true })
  end
  return call, bad
end

-- Runs one call's handler; returns the tool result's text. A missing
-- handler, one that raises or one that returns nil, message is reported to
-- the model rather than ending the loop: it can then try otherwise.
local function run_handler(handlers, call)
  local h = handlers[call.name]
  if h == nil then
    return "error: no handler for tool '" .. call.name .. "'"
  end
  local ok, v, message = pcall(h, call.arguments, call)
  if not ok then
    return "error: tool '" .. call.name .. "' raised: " .. tostring(v)
  end
  if v == nil and message ~= nil then
    return "error: tool '" .. call.name .. "' failed: " .. tostring(message)
  end
  return result_text(call.name, v)
end

local function copy_list(t)
  local out = {}
  for i, v in ipairs(t) do
    out[i] = v
  end
  return out
end

--- Runs the call → tools → call loop. client: anything with
--- :complete(request, opts) (a router, a provider, a cassette). handlers:
--- name → function(arguments, call) returning a string or a JSON-able value
--- (or nil, message). opts: max_steps (model calls, default 8), call (the
--- options of each client:complete, e.g. on_token).
--- Returns the final response with `steps`, `messages` (the whole
--- conversation, the final answer included), `total_cost` and
--- `total_usage`; or nil, message, code, info: the client's error as it
--- came, or "ESTEPS" when max_steps calls all asked for tools (info:
--- steps, messages, response).
---@param client { complete: fun(self, request: table, opts?: table): table?, string?, string? }
---@param request table
---@param handlers table<string, fun(arguments: table, call: table): any>
---@param opts? { max_steps?: integer, call?: table }
function M.run(client, request, handlers, opts)
  local fname = "po.llm.tool_loop"
  if (type(client) ~= "table" and type(client) ~= "userdata") or type(client.complete) ~= "function" then
    error(fname .. ": client must have a :complete method (a router, a provider), got " .. type(client), 2)
  end
  if type(request) ~= "table" then
    error(fname .. ": request must be a table, got " .. type(request), 2)
  end
  if type(handlers) ~= "table" then
    error(fname .. ": handlers must be a table of functions by tool name, got " .. type(handlers), 2)
  end
  opts = opts or {}
  if type(opts) ~= "table" then
    error(fname .. ": options must be a table, got " .. type(opts), 2)
  end
  require("poengine.util.options").check(fname, opts, OPTIONS, 2)
  local max_steps = opts.max_steps or M.MAX_STEPS
  if max_steps < 1 or max_steps ~= math.floor(max_steps) then
    error(fname .. ": max_steps must be a positive integer, got " .. tostring(max_steps), 2)
  end
  if request.messages == nil and type(request.prompt) ~= "string" then
    error(fname .. ": request.messages or request.prompt is required", 2)
  end
  local messages = request.messages and copy_list(request.messages)
    or { { role = "user", content = request.prompt } }
  local req = {}
  for k, v in pairs(request) do
    req[k] = v
  end
  req.prompt = nil
  local total_cost, total_usage = 0, { input = 0, output = 0 }
  local res
  for step = 1, max_steps do
    req.messages = copy_list(messages)
    local err, code, info
    res, err, code, info = client:complete(req, opts.call)
    if not res then
      return nil, err, code, info
    end
    total_cost = total_cost + (res.cost or 0)
    local u = res.usage or {}
    total_usage.input = total_usage.input + (u.input or 0)
    total_usage.output = total_usage.output + (u.output or 0)
    local wanted = type(res.tool_calls) == "table" and res.tool_calls or {}
    local text = res.text ~= "" and res.text or nil
    if #wanted == 0 then
      messages[#messages + 1] = { role = "assistant", content = text }
      res.steps, res.messages, res.total_cost, res.total_usage = step, messages, total_cost, total_usage
      return res
    end
    if step == max_steps then
      break
    end
    local calls, results = {}, {}
    for i, c in ipairs(wanted) do
      local call, bad = normalize_call(c, step, i)
      calls[i] = call
      results[i] = { role = "tool", tool_call_id = call.id, content = bad or run_handler(handlers, call) }
    end
    messages[#messages + 1] = { role = "assistant", content = text, tool_calls = calls,
      thinking_blocks = res.thinking_blocks }
    for _, r in ipairs(results) do
      messages[#messages + 1] = r
    end
  end
  return nil, "tool loop: " .. max_steps .. " steps without a final answer", "ESTEPS",
    { steps = max_steps, messages = messages, response = res }
end

return M
