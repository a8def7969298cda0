--- The OpenAI Chat Completions wire format (`POST {base_url}/chat/completions`),
--- for OpenAI and every OpenAI-compatible server (vLLM, llama.cpp's server,
--- LM Studio, OpenRouter …). base_url includes the version prefix, as in
--- OpenAI's SDKs: "https://api.openai.com/v1", "http://localhost:8000/v1".
local po = require "poengine"

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

local function usage_of(u)
  if type(u) ~= "table" then
    return nil
  end
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

function A.parse(body)
  local choice = type(body.choices) == "table" and body.choices[1]
  if type(choice) ~= "table" or type(choice.message) ~= "table" then
    return nil, "no choices[1].message in the reply"
  end
  local content = choice.message.content
  return {
    text = type(content) == "string" and content or "",
    finish_reason = FINISH[choice.finish_reason] or choice.finish_reason,
    tool_calls = type(choice.message.tool_calls) == "table" and choice.message.tool_calls or nil,
    usage = usage_of(body.usage),
  }
end

function A.error_message(body)
  if type(body) == "table" and type(body.error) == "table" then
    return body.error.message, body.error.code
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

function A.stream_event(st, ev, emit)
  if ev.data == "[DONE]" then
    st.done = true
    return
  end
  local chunk, err = po.json.decode(ev.data)
  if not chunk then
    return "malformed stream event: " .. err, "EJSON"
  end
  st.events = st.events or {}
  st.events[#st.events + 1] = chunk
  if type(chunk.error) == "table" then
    return tostring(chunk.error.message), "EHTTP"
  end
  local usage = usage_of(chunk.usage)
  if usage then
    st.usage = usage
  end
  local choice = type(chunk.choices) == "table" and chunk.choices[1]
  if type(choice) == "table" then
    local delta = type(choice.delta) == "table" and choice.delta or {}
    if type(delta.content) == "string" and delta.content ~= "" then
      st.parts[#st.parts + 1] = delta.content
      emit(delta.content)
    end
    if type(delta.tool_calls) == "table" then
      for _, tc in ipairs(delta.tool_calls) do
        local i = (tc.index or 0) + 1
        local acc = st.tools[i] or { type = "function", ["function"] = { name = "", arguments = "" } }
        st.tools[i] = acc
        acc.id = tc.id or acc.id
        local fn = type(tc["function"]) == "table" and tc["function"] or {}
        acc["function"].name = acc["function"].name .. (fn.name or "")
        acc["function"].arguments = acc["function"].arguments .. (fn.arguments or "")
      end
    end
    if choice.finish_reason ~= nil and choice.finish_reason ~= po.json.null then
      st.finish_reason = FINISH[choice.finish_reason] or choice.finish_reason
    end
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
