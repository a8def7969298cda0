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
}

function A.default_base_url()
  return "https://api.openai.com/v1"
end

local FINISH = { stop = "stop", length = "length", tool_calls = "tool_calls", function_call = "tool_calls",
  content_filter = "content_filter" }

function A.request(cfg, req, model)
  local messages = {}
  if req.system then
    messages[1] = { role = "system", content = req.system }
  end
  for _, m in ipairs(req.messages) do
    messages[#messages + 1] = m
  end
  local body = {
    model = model,
    messages = po.json.array(messages),
    max_tokens = req.max_tokens,
    temperature = req.temperature,
    stop = req.stop,
    seed = req.seed,
    tools = req.tools,
    response_format = req.response_format,
  }
  if req.stream then
    body.stream = true
    body.stream_options = { include_usage = true }
  end
  local headers = { ["Content-Type"] = "application/json" }
  if cfg.api_key then
    headers["Authorization"] = "Bearer " .. cfg.api_key
  end
  return cfg.base_url .. "/chat/completions", headers, body
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
  local content, tool_calls, finish, usage
  content, ok = want(msg.content, "string")
  if not ok then
    return nil, bad_shape("choices[1].message.content", "a string", msg.content)
  end
  tool_calls, ok = want(msg.tool_calls, "table")
  if not ok then
    return nil, bad_shape("choices[1].message.tool_calls", "a list", msg.tool_calls)
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
    tool_calls = tool_calls,
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

function A.is_context_error(status, body, message)
  local code = type(body) == "table" and type(body.error) == "table" and body.error.code
  return code == "context_length_exceeded" or (status == 400 and tostring(message):find("maximum context length", 1, true) ~= nil)
end

--- Streaming: one state per call; event(st, ev, emit) takes each SSE event.
function A.stream_start()
  return { parts = {}, tools = {}, done = false }
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
  local acc = st.tools[i] or { type = "function", ["function"] = { name = "", arguments = "" } }
  st.tools[i] = acc
  acc.id = id or acc.id
  acc["function"].name = acc["function"].name .. (name or "")
  acc["function"].arguments = acc["function"].arguments .. (args or "")
end

-- One decoded chunk's choice: text, tool calls, finish reason.
local function add_choice(st, choice, emit)
  if type(choice) ~= "table" then
    return bad_shape("choices[1]", "an object", choice)
  end
  local delta, ok = want(choice.delta, "table")
  if not ok then
    return bad_shape("choices[1].delta", "an object", choice.delta)
  end
  delta = delta or {}
  local content, tool_calls, finish
  content, ok = want(delta.content, "string")
  if not ok then
    return bad_shape("choices[1].delta.content", "a string", delta.content)
  end
  tool_calls, ok = want(delta.tool_calls, "table")
  if not ok then
    return bad_shape("choices[1].delta.tool_calls", "a list", delta.tool_calls)
  end
  finish, ok = finish_of(choice.finish_reason)
  if not ok then
    return bad_shape("choices[1].finish_reason", "a string", choice.finish_reason)
  end
  if content and content ~= "" then
    st.parts[#st.parts + 1] = content
    emit(content)
  end
  for _, tc in ipairs(tool_calls or {}) do
    local msg, code = add_tool_fragment(st, tc)
    if msg then
      return msg, code
    end
  end
  st.finish_reason = finish or st.finish_reason
end

function A.stream_event(st, ev, emit)
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
    local e = type(chunk.error) == "table" and chunk.error or {}
    return type(e.message) == "string" and e.message or "stream error", "EHTTP"
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
    return add_choice(st, choices[1], emit)
  end
end

function A.stream_finish(st)
  if not st.done then
    return nil, "the stream ended before data: [DONE]", "EPROTO"
  end
  return {
    text = table.concat(st.parts),
    finish_reason = st.finish_reason,
    tool_calls = #st.tools > 0 and st.tools or nil,
    usage = st.usage,
    raw = st.events,
  }
end

return A
