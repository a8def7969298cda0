--- The Anthropic Messages wire format (`POST {base_url}/v1/messages`).
--- base_url is the host, as in Anthropic's SDKs: "https://api.anthropic.com".
local po = require "poengine"

local A = {
  name = "anthropic",
  key_env = "ANTHROPIC_API_KEY",
  stream_format = "sse",
  stream_type = "text/event-stream",
  input_includes_cached = false, -- input_tokens excludes cache reads and writes
  api_version = "2023-06-01",
  default_max_tokens = 1024, -- the API requires max_tokens
}

function A.default_base_url()
  return "https://api.anthropic.com"
end

local FINISH = { end_turn = "stop", stop_sequence = "stop", max_tokens = "length", tool_use = "tool_calls" }

-- OpenAI-style tools ({ type = "function", ["function"] = { name, description,
-- parameters } }) become Anthropic's ({ name, description, input_schema });
-- tools already in Anthropic's shape pass through.
local function tools_of(tools)
  if not tools then
    return nil
  end
  local out = {}
  for i, t in ipairs(tools) do
    local fn = type(t) == "table" and t["function"]
    if type(fn) == "table" then
      out[i] = { name = fn.name, description = fn.description, input_schema = fn.parameters or { type = "object" } }
    else
      out[i] = t
    end
  end
  return out
end

function A.request(cfg, req, model)
  local body = {
    model = model,
    max_tokens = req.max_tokens or A.default_max_tokens,
    messages = po.json.array(req.messages),
    system = req.system,
    temperature = req.temperature,
    stop_sequences = req.stop,
    tools = tools_of(req.tools),
    stream = req.stream or nil,
  }
  local headers = { ["Content-Type"] = "application/json", ["anthropic-version"] = A.api_version }
  if cfg.api_key then
    headers["x-api-key"] = cfg.api_key
  end
  return cfg.base_url .. "/v1/messages", headers, body
end

local function usage_of(u, into)
  if type(u) ~= "table" then
    return into
  end
  into = into or {}
  into.input = u.input_tokens or into.input
  into.output = u.output_tokens or into.output
  into.cached_read = u.cache_read_input_tokens or into.cached_read
  into.cache_write = u.cache_creation_input_tokens or into.cache_write
  into.reasoning = 0
  return into
end

function A.parse(body)
  if type(body.content) ~= "table" then
    return nil, "no content in the reply"
  end
  local parts, tools = {}, {}
  for _, block in ipairs(body.content) do
    if type(block) == "table" and block.type == "text" then
      parts[#parts + 1] = block.text
    elseif type(block) == "table" and block.type == "tool_use" then
      tools[#tools + 1] = block
    end
  end
  return {
    text = table.concat(parts),
    finish_reason = FINISH[body.stop_reason] or body.stop_reason,
    tool_calls = #tools > 0 and tools or nil,
    usage = usage_of(body.usage),
  }
end

function A.error_message(body)
  if type(body) == "table" and type(body.error) == "table" then
    return body.error.message, body.error.type
  end
end

function A.is_context_error(status, body, message)
  return status == 400 and tostring(message):find("prompt is too long", 1, true) ~= nil
end

function A.stream_start()
  return { parts = {}, done = false, events = {} }
end

function A.stream_event(st, ev, emit)
  local data, err = po.json.decode(ev.data)
  if not data then
    return "malformed stream event: " .. err, "EJSON"
  end
  st.events[#st.events + 1] = data
  local kind = data.type or ev.event
  if kind == "message_start" and type(data.message) == "table" then
    st.usage = usage_of(data.message.usage, st.usage)
  elseif kind == "content_block_delta" and type(data.delta) == "table" then
    if data.delta.type == "text_delta" and type(data.delta.text) == "string" then
      st.parts[#st.parts + 1] = data.delta.text
      emit(data.delta.text)
    end
  elseif kind == "message_delta" then
    if type(data.delta) == "table" and data.delta.stop_reason ~= po.json.null then
      st.finish_reason = FINISH[data.delta.stop_reason] or data.delta.stop_reason
    end
    st.usage = usage_of(data.usage, st.usage)
  elseif kind == "message_stop" then
    st.done = true
  elseif kind == "error" then
    local e = type(data.error) == "table" and data.error or {}
    -- overloaded_error mid-stream: the same condition as a 529 status.
    return tostring(e.message or "stream error"), "EHTTP", { status = e.type == "overloaded_error" and 529 or 500 }
  end
end

function A.stream_finish(st)
  if not st.done then
    return nil, "the stream ended before message_stop", "EPROTO"
  end
  return { text = table.concat(st.parts), finish_reason = st.finish_reason, usage = st.usage, raw = st.events }
end

return A
