--- The OpenAI Chat Completions wire format (`POST {base_url}/chat/completions`),
--- for OpenAI and every OpenAI-compatible server (vLLM, llama.cpp's server,
--- LM Studio, OpenRouter …). base_url includes the version prefix, as in
--- OpenAI's SDKs: "https://api.openai.com/v1", "http://localhost:8000/v1".
local po = require "poengine"
local util = require "poengine.llm.util"

local want, bad_shape, is_count = util.want, util.bad_shape, util.is_count

local A = {
  name = "openai",
  key_env = "OPENAI_API_KEY",
  stream_format = "sse",
  stream_type = "text/event-stream",
  input_includes_cached = true, -- prompt_tokens counts cached tokens too
  base_url_env = "OPENAI_BASE_URL", -- as OpenAI's SDKs read it
  version_hint = "/v1", -- a base URL without it answers a bare 404
}

function A.default_base_url()
  return "https://api.openai.com/v1"
end

local FINISH = { stop = "stop", length = "length", tool_calls = "tool_calls", function_call = "tool_calls",
  content_filter = "content_filter" }

-- The refusal pair for a field OpenAI's API has no place for.
local function unsupported(vendor, field, why)
  return nil, vendor .. ": " .. field .. " is not supported" .. (why and (" (" .. why .. ")") or ""), "EUNSUPPORTED"
end

-- One content part in OpenAI's shape. A part's cache_control is a hint
-- for Anthropic; OpenAI caches prompts by itself, so it is left out.
local function part_of(vendor, where, p)
  if p.type == "text" then
    return { type = "text", text = p.text }
  elseif p.type == "image" then
    local url = p.url
    if not url and p.data then
      if not p.media_type then
        return nil, vendor .. ": " .. where .. ": an image given as data needs its media_type", "EINVAL"
      end
      url = "data:" .. p.media_type .. ";base64," .. p.data
    end
    if not url then
      return nil, vendor .. ": " .. where .. ": an image needs a url or data", "EINVAL"
    end
    return { type = "image_url", image_url = { url = url } }
  end
  return unsupported(vendor, where .. ".type '" .. tostring(p.type) .. "'")
end

local function content_of(vendor, where, content)
  if type(content) ~= "table" then
    return content
  end
  local parts = {}
  for i, p in ipairs(content) do
    local part, msg, code = part_of(vendor, where .. "[" .. i .. "]", p)
    if not part then
      return nil, msg, code
    end
    parts[i] = part
  end
  return po.json.array(parts)
end

-- A tool call of a normalized assistant turn, as OpenAI wants it back:
-- the arguments as a JSON string.
local function tool_call_of(tc)
  local args = tc.arguments_json
  if args == nil then
    args = po.json.encode(tc.arguments ~= nil and tc.arguments or po.json.object())
  end
  return { id = tc.id, type = "function", ["function"] = { name = tc.name, arguments = args } }
end

local function message_of(vendor, i, m)
  local where = "messages[" .. i .. "].content"
  local content, msg, code = content_of(vendor, where, m.content)
  if msg then
    return nil, msg, code
  end
  local out = { role = m.role, content = content, name = m.name, tool_call_id = m.tool_call_id }
  if m.tool_calls then
    local calls = {}
    for j, tc in ipairs(m.tool_calls) do
      calls[j] = tool_call_of(tc)
    end
    out.tool_calls = po.json.array(calls)
    out.content = content or po.json.null -- as OpenAI's own examples send it
  end
  return out
end

local function tools_of(tools)
  if not tools then
    return nil
  end
  local out = {}
  for i, t in ipairs(tools) do
    out[i] = { type = "function", ["function"] = { name = t.name, description = t.description,
      parameters = t.parameters, strict = t.strict } }
  end
  return po.json.array(out)
end

local function tool_choice_of(choice)
  if type(choice) == "table" then
    return { type = "function", ["function"] = { name = choice.name } }
  end
  return choice
end

local function response_format_of(rf)
  if not rf then
    return nil
  elseif rf.type == "json" then
    return { type = "json_object" }
  elseif rf.type == "json_schema" then
    return { type = "json_schema", json_schema = { name = rf.name or "response", schema = rf.schema,
      strict = rf.strict } }
  end
  return rf -- "text", or a shape the caller wrote for a server of their own
end

--- The Chat Completions body for a normalized request, or nil, message,
--- code naming the field it cannot carry. vendor names the adapter in
--- messages ("openai", "azure"). Shared with azure.lua.
---@return table? body
---@return string? message
---@return string? code
function A.body(req, model, vendor)
  vendor = vendor or A.name
  local messages = {}
  if req.system then
    messages[1] = { role = "system", content = req.system }
  end
  for i, m in ipairs(req.messages) do
    local msg, err, code = message_of(vendor, i, m)
    if not msg then
      return nil, err, code
    end
    messages[#messages + 1] = msg
  end
  local body = {
    model = model,
    messages = po.json.array(messages),
    max_tokens = req.max_tokens,
    temperature = req.temperature,
    top_p = req.top_p,
    stop = req.stop,
    seed = req.seed,
    tools = tools_of(req.tools),
    tool_choice = tool_choice_of(req.tool_choice),
    response_format = response_format_of(req.response_format),
  }
  local reasoning = req.reasoning
  if reasoning then
    if not reasoning.effort then
      return unsupported(vendor, "reasoning.budget_tokens", "give reasoning.effort: low, medium or high")
    end
    -- budget_tokens beside effort is for vendors that take a budget; here
    -- effort says it all.
    body.reasoning_effort = reasoning.effort
    -- Reasoning models refuse max_tokens and take max_completion_tokens,
    -- which counts the reasoning tokens too.
    body.max_completion_tokens, body.max_tokens = body.max_tokens, nil
  end
  if req.stream then
    body.stream = true
    body.stream_options = { include_usage = true }
  end
  return body
end

--- The headers OpenAI authenticates with: a bearer token.
function A.headers(cfg)
  return util.bearer_headers(cfg.api_key)
end

function A.request(cfg, req, model)
  local body, msg, code = A.body(req, model, A.name)
  if not body then
    return nil, msg, code
  end
  return cfg.base_url .. "/chat/completions", A.headers(cfg), body
end

-- usage, checked for shape (the counts themselves are checked by the provider).
local function usage_of(u)
  local pd = type(u.prompt_tokens_details) == "table" and u.prompt_tokens_details or {}
  local cd = type(u.completion_tokens_details) == "table" and u.completion_tokens_details or {}
  return {
    input = u.prompt_tokens,
    output = u.completion_tokens,
    cached_read = pd.cached_tokens,
    cache_write = 0,
    reasoning = cd.reasoning_tokens,
  }
end

-- The finish reason, normalized; nil, false when it is not a string.
local function finish_of(v)
  local reason, ok = want(v, "string")
  return FINISH[reason] or reason, ok
end

-- The reasoning text a compatible server sends beside the answer:
-- reasoning_content (DeepSeek, vLLM's reasoning parsers) or reasoning
-- (OpenRouter). OpenAI itself keeps its reasoning hidden. Neither field is
-- OpenAI's, so one of another type (a server's own object) is not read
-- rather than failing a good answer.
local function reasoning_of(m)
  for _, k in ipairs { "reasoning_content", "reasoning" } do
    if type(m[k]) == "string" then
      return m[k]
    end
  end
end

-- OpenAI's tool calls in the normalized shape { id, name, arguments_json }.
-- A server that sends the arguments as an object rather than OpenAI's
-- JSON string gives them as `arguments`, which core encodes.
local function tool_calls_of(list)
  local out = {}
  for i, tc in ipairs(list) do
    local where = "choices[1].message.tool_calls[" .. i .. "]"
    local fn = type(tc) == "table" and tc["function"]
    if type(fn) ~= "table" then
      return nil, bad_shape(where .. ".function", "an object", fn)
    end
    if type(fn.name) ~= "string" then
      return nil, bad_shape(where .. ".function.name", "a string", fn.name)
    end
    local id, ok = want(tc.id, "string")
    if not ok then
      return nil, bad_shape(where .. ".id", "a string", tc.id)
    end
    local call = { id = id, name = fn.name }
    if type(fn.arguments) == "table" and fn.arguments ~= po.json.null then
      call.arguments = fn.arguments
    else
      local args
      args, ok = want(fn.arguments, "string")
      if not ok then
        return nil, bad_shape(where .. ".function.arguments", "a string", fn.arguments)
      end
      call.arguments_json = args or ""
    end
    out[i] = call
  end
  return out
end

function A.parse(body)
  local choices, ok = want(body.choices, "table")
  if not ok then
    return nil, bad_shape("choices", "a list", body.choices)
  end
  local choice = choices and choices[1]
  if type(choice) ~= "table" or type(choice.message) ~= "table" then
    return nil, "no choices[1].message in the reply", "EPROTO"
  end
  local msg = choice.message
  local content, tool_calls, finish, usage, err, code
  content, ok = want(msg.content, "string")
  if not ok then
    return nil, bad_shape("choices[1].message.content", "a string", msg.content)
  end
  tool_calls, ok = want(msg.tool_calls, "table")
  if not ok then
    return nil, bad_shape("choices[1].message.tool_calls", "a list", msg.tool_calls)
  end
  if tool_calls then
    tool_calls, err, code = tool_calls_of(tool_calls)
    if not tool_calls then
      return nil, err, code
    end
  end
  finish, ok = finish_of(choice.finish_reason)
  if not ok then
    return nil, bad_shape("choices[1].finish_reason", "a string", choice.finish_reason)
  end
  usage, ok = want(body.usage, "table")
  if not ok then
    return nil, bad_shape("usage", "an object", body.usage)
  end
  return {
    text = content or "",
    finish_reason = finish,
    tool_calls = tool_calls and #tool_calls > 0 and tool_calls or nil,
    reasoning = reasoning_of(msg),
    usage = usage and usage_of(usage),
  }
end

function A.error_message(body)
  if type(body) == "table" and type(body.error) == "table" then
    local code = body.error.code -- a string from OpenAI, a number from some compatible servers
    if type(code) == "number" then
      code = tostring(code)
    end
    return (want(body.error.message, "string")), (want(code, "string"))
  end
end

--- The error code for a failed call, from the HTTP status (nil inside a
--- stream) and the documented error body: ECONTEXT, EQUOTA (never
--- retried), ERATELIMIT, EAUTH, EINVALID, or nil (core says EHTTP).
---@param status? integer
---@param body any the decoded error body
---@param message? string
---@return string?
function A.error_code(status, body, message)
  local e = type(body) == "table" and type(body.error) == "table" and body.error or {}
  local code, kind = e.code, e.type
  if code == "context_length_exceeded"
    or (status == 400 and tostring(message):find("maximum context length", 1, true)) then
    return "ECONTEXT"
  elseif code == "insufficient_quota" or kind == "insufficient_quota" then
    return "EQUOTA"
  elseif code == "rate_limit_exceeded" or status == 429 then
    return "ERATELIMIT"
  elseif status == 401 or status == 403 or code == "invalid_api_key" then
    return "EAUTH"
  elseif kind == "invalid_request_error" or status == 400 then
    return "EINVALID"
  end
end

--- For a provider that predates error_code.
function A.is_context_error(status, body, message)
  return A.error_code(status, body, message) == "ECONTEXT"
end

--- Streaming: one state per call; event(st, ev, emit, emit_reasoning)
--- takes each SSE event.
function A.stream_start()
  return { parts = {}, reasoning = {}, tools = {}, done = false }
end

-- Adds one streamed tool-call fragment to st.tools; returns an error pair
-- when the fragment is not the shape OpenAI documents.
local function add_tool_fragment(st, tc)
  if type(tc) ~= "table" then
    return bad_shape("delta.tool_calls[i]", "an object", tc)
  end
  local index, ok = want(tc.index, "number")
  -- Fragments name their call by index, in order: a new call comes right
  -- after the last one, so the list stays a list.
  if not ok or (index and not (is_count(index) and index <= #st.tools)) then
    return bad_shape("delta.tool_calls[i].index", "the next or an earlier call's index", tc.index)
  end
  local id, fn, name, args
  id, ok = want(tc.id, "string")
  if not ok then
    return bad_shape("delta.tool_calls[i].id", "a string", tc.id)
  end
  fn, ok = want(tc["function"], "table")
  if not ok then
    return bad_shape("delta.tool_calls[i].function", "an object", tc["function"])
  end
  fn = fn or {}
  name, ok = want(fn.name, "string")
  if not ok then
    return bad_shape("delta.tool_calls[i].function.name", "a string", fn.name)
  end
  args, ok = want(fn.arguments, "string")
  if not ok then
    return bad_shape("delta.tool_calls[i].function.arguments", "a string", fn.arguments)
  end
  local i = (index or 0) + 1
  local acc = st.tools[i] or { name = {}, args = {} }
  st.tools[i] = acc
  acc.id = id or acc.id
  acc.name[#acc.name + 1] = name
  acc.args[#acc.args + 1] = args
end

-- One decoded chunk's choice: text, reasoning, tool calls, finish reason.
local function add_choice(st, choice, emit, emit_reasoning)
  if type(choice) ~= "table" then
    return bad_shape("choices[1]", "an object", choice)
  end
  local delta, ok = want(choice.delta, "table")
  if not ok then
    return bad_shape("choices[1].delta", "an object", choice.delta)
  end
  delta = delta or {}
  local content, tool_calls, finish, reasoning, msg, code
  content, ok = want(delta.content, "string")
  if not ok then
    return bad_shape("choices[1].delta.content", "a string", delta.content)
  end
  tool_calls, ok = want(delta.tool_calls, "table")
  if not ok then
    return bad_shape("choices[1].delta.tool_calls", "a list", delta.tool_calls)
  end
  reasoning = reasoning_of(delta)
  finish, ok = finish_of(choice.finish_reason)
  if not ok then
    return bad_shape("choices[1].finish_reason", "a string", choice.finish_reason)
  end
  if reasoning and reasoning ~= "" then
    st.reasoning[#st.reasoning + 1] = reasoning
    if emit_reasoning then
      emit_reasoning(reasoning)
    end
  end
  if content and content ~= "" then
    st.parts[#st.parts + 1] = content
    emit(content)
  end
  for _, tc in ipairs(tool_calls or {}) do
    msg, code = add_tool_fragment(st, tc)
    if msg then
      return msg, code
    end
  end
  st.finish_reason = finish or st.finish_reason
end

function A.stream_event(st, ev, emit, emit_reasoning)
  if ev.data == "[DONE]" then
    st.done = true
    return
  end
  local chunk, err = po.json.decode(ev.data)
  if chunk == nil then
    return "malformed stream event: " .. err, "EJSON"
  end
  if type(chunk) ~= "table" then
    return bad_shape("a stream event", "an object", chunk)
  end
  st.events = st.events or {}
  st.events[#st.events + 1] = chunk
  if chunk.error ~= nil and chunk.error ~= po.json.null then
    local message = A.error_message(chunk) or "stream error"
    return message, A.error_code(nil, chunk, message) or "EHTTP"
  end
  local usage, choices, ok
  usage, ok = want(chunk.usage, "table")
  if not ok then
    return bad_shape("usage", "an object", chunk.usage)
  end
  if usage then
    st.usage = usage_of(usage)
  end
  choices, ok = want(chunk.choices, "table")
  if not ok then
    return bad_shape("choices", "a list", chunk.choices)
  end
  if choices and choices[1] ~= nil then
    return add_choice(st, choices[1], emit, emit_reasoning)
  end
end

function A.stream_finish(st)
  if not st.done then
    return nil, "the stream ended before data: [DONE]", "EPROTO"
  end
  local calls = {}
  for i, acc in ipairs(st.tools) do
    calls[i] = { id = acc.id, name = table.concat(acc.name), arguments_json = table.concat(acc.args) }
  end
  return {
    text = table.concat(st.parts),
    finish_reason = st.finish_reason,
    tool_calls = #calls > 0 and calls or nil,
    reasoning = #st.reasoning > 0 and table.concat(st.reasoning) or nil,
    usage = st.usage,
    raw = st.events,
  }
end

--- Embeddings (`POST {base_url}/embeddings`): texts as one batch, floats
--- back. opts.dimensions shortens the vectors (text-embedding-3 models).
function A.embed_body(texts, model, opts)
  return { model = model, input = po.json.array(util.copy(texts)), encoding_format = "float",
    dimensions = opts and opts.dimensions }
end

function A.embed_request(cfg, texts, model, opts)
  return cfg.base_url .. "/embeddings", A.headers(cfg), A.embed_body(texts, model, opts)
end

--- The vectors of an embeddings reply in input order (the reply orders
--- them by `index`), with usage.input; nil, message, "EPROTO" when the
--- reply is not the documented shape.
function A.embed_parse(body)
  local data = type(body) == "table" and body.data
  if type(data) ~= "table" then
    return nil, bad_shape("data", "a list", data)
  end
  local vectors = {}
  for i, d in ipairs(data) do
    local where = "data[" .. i .. "]"
    local index = type(d) == "table" and d.index
    if not is_count(index) or index >= #data or vectors[index + 1] then
      return nil, bad_shape(where .. ".index", "a distinct index below " .. #data, index)
    end
    local v = d.embedding
    if type(v) ~= "table" then
      return nil, bad_shape(where .. ".embedding", "a list of numbers (ask encoding_format float)", v)
    end
    for j = 1, #v do
      if type(v[j]) ~= "number" then
        return nil, bad_shape(where .. ".embedding[" .. j .. "]", "a number", v[j])
      end
    end
    vectors[index + 1] = v
  end
  local usage = type(body.usage) == "table" and body.usage or {}
  local input = want(usage.prompt_tokens, "number")
  return { vectors = vectors, usage = { input = input } }
end

return A
