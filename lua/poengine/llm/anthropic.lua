--- The Anthropic Messages wire format (`POST {base_url}/v1/messages`).
--- base_url is the host, as in Anthropic's SDKs: "https://api.anthropic.com".
local po = require "poengine"
local util = require "poengine.llm.util"

local want, bad_shape = util.want, util.bad_shape

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

-- usage merged into `into` (a stream sends it in parts); the counts
-- themselves are checked by the provider.
local function usage_of(u, into)
  if u == nil then
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

-- The stop reason, normalized; nil, false when it is not a string.
local function finish_of(v)
  local reason, ok = want(v, "string")
  return FINISH[reason] or reason, ok
end

function A.parse(body)
  if type(body.content) ~= "table" then
    return nil, "no content in the reply", "EPROTO"
  end
  local parts, tools = {}, {}
  for i, block in ipairs(body.content) do
    if type(block) ~= "table" then
      return nil, bad_shape("content[" .. i .. "]", "an object", block)
    end
    if block.type == "text" then
      if type(block.text) ~= "string" then
        return nil, bad_shape("content[" .. i .. "].text", "a string", block.text)
      end
      parts[#parts + 1] = block.text
    elseif block.type == "tool_use" then
      tools[#tools + 1] = block
    end
  end
  local finish, ok = finish_of(body.stop_reason)
  if not ok then
    return nil, bad_shape("stop_reason", "a string", body.stop_reason)
  end
  local usage
  usage, ok = want(body.usage, "table")
  if not ok then
    return nil, bad_shape("usage", "an object", body.usage)
  end
  return {
    text = table.concat(parts),
    finish_reason = finish,
    tool_calls = #tools > 0 and tools or nil,
    usage = usage_of(usage),
  }
end

function A.error_message(body)
  if type(body) == "table" and type(body.error) == "table" then
    return (want(body.error.message, "string")), (want(body.error.type, "string"))
  end
end

function A.is_context_error(status, body, message)
  return status == 400 and tostring(message):find("prompt is too long", 1, true) ~= nil
end

function A.stream_start()
  return { parts = {}, done = false, events = {} }
end

-- The event's fields this adapter reads, each of its documented type.
local EVENT_FIELDS = { type = "string", message = "table", delta = "table", usage = "table", error = "table" }

function A.stream_event(st, ev, emit)
  local data, err = po.json.decode(ev.data)
  if data == nil then
    return "malformed stream event: " .. err, "EJSON"
  end
  if type(data) ~= "table" then
    return bad_shape("a stream event", "an object", data)
  end
  st.events[#st.events + 1] = data
  for field, t in pairs(EVENT_FIELDS) do
    local _, ok = want(data[field], t)
    if not ok then
      return bad_shape(field, "a " .. t, data[field])
    end
  end
  local kind = want(data.type, "string") or ev.event
  local delta = want(data.delta, "table") or {}
  local message = want(data.message, "table")
  if kind == "message_start" and message then
    local usage, ok = want(message.usage, "table")
    if not ok then
      return bad_shape("message.usage", "an object", message.usage)
    end
    st.usage = usage_of(usage, st.usage)
  elseif kind == "content_block_delta" then
    local text, ok = want(delta.text, "string")
    if not ok then
      return bad_shape("delta.text", "a string", delta.text)
    end
    if delta.type == "text_delta" and text then
      st.parts[#st.parts + 1] = text
      emit(text)
    end
  elseif kind == "message_delta" then
    local finish, ok = finish_of(delta.stop_reason)
    if not ok then
      return bad_shape("delta.stop_reason", "a string", delta.stop_reason)
    end
    st.finish_reason = finish or st.finish_reason
    st.usage = usage_of(want(data.usage, "table"), st.usage)
  elseif kind == "message_stop" then
    st.done = true
  elseif kind == "error" then
    local e = want(data.error, "table") or {}
    -- overloaded_error mid-stream: the same condition as a 529 status.
    return want(e.message, "string") or "stream error", "EHTTP", { status = e.type == "overloaded_error" and 529 or 500 }
  end
end

function A.stream_finish(st)
  if not st.done then
    return nil, "the stream ended before message_stop", "EPROTO"
  end
  return { text = table.concat(st.parts), finish_reason = st.finish_reason, usage = st.usage, raw = st.events }
end

return A
