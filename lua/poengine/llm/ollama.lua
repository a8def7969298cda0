--- The Ollama chat wire format (`POST {base_url}/api/chat`). base_url is the
--- host: OLLAMA_HOST, else "http://localhost:11434". Streams are NDJSON.
local po = require "poengine"
local util = require "poengine.llm.util"

local want, bad_shape = util.want, util.bad_shape

local A = {
  name = "ollama",
  key_env = nil, -- a local server; an api_key, if given, is sent as a Bearer token (proxies)
  stream_format = "ndjson",
  stream_type = "application/x-ndjson",
  input_includes_cached = true,
}

function A.default_base_url()
  local host = os.getenv("OLLAMA_HOST")
  if host and host ~= "" then
    if not host:find("://", 1, true) then
      host = "http://" .. host
    end
    return (host:gsub("/+$", ""))
  end
  return "http://localhost:11434"
end

local FINISH = { stop = "stop", length = "length" }

function A.request(cfg, req, model)
  local options = { temperature = req.temperature, num_predict = req.max_tokens, stop = req.stop, seed = req.seed }
  local messages = {}
  if req.system then
    messages[1] = { role = "system", content = req.system }
  end
  for _, m in ipairs(req.messages) do
    messages[#messages + 1] = m
  end
  local format
  local rf = req.response_format
  if type(rf) == "table" then
    if rf.type == "json_object" then
      format = "json"
    elseif rf.type == "json_schema" and type(rf.json_schema) == "table" then
      format = rf.json_schema.schema
    end
  end
  local body = {
    model = model,
    messages = po.json.array(messages),
    stream = req.stream and true or false, -- Ollama streams unless told not to
    options = next(options) and options or nil,
    tools = req.tools,
    format = format,
  }
  local headers = { ["Content-Type"] = "application/json" }
  if cfg.api_key then
    headers["Authorization"] = "Bearer " .. cfg.api_key
  end
  return cfg.base_url .. "/api/chat", headers, body
end

-- The counts are checked by the provider.
local function usage_of(b)
  return { input = b.prompt_eval_count, output = b.eval_count, cached_read = 0, cache_write = 0, reasoning = 0 }
end

-- message.content, message.tool_calls and done_reason of a reply or a stream
-- line, each of its documented type; nil, message, "EPROTO" otherwise.
local function fields_of(body)
  local msg, ok = want(body.message, "table")
  if not ok then
    return nil, bad_shape("message", "an object", body.message)
  end
  msg = msg or {}
  local out = {}
  out.text, ok = want(msg.content, "string")
  if not ok then
    return nil, bad_shape("message.content", "a string", msg.content)
  end
  out.tool_calls, ok = want(msg.tool_calls, "table")
  if not ok then
    return nil, bad_shape("message.tool_calls", "a list", msg.tool_calls)
  end
  local reason
  reason, ok = want(body.done_reason, "string")
  if not ok then
    return nil, bad_shape("done_reason", "a string", body.done_reason)
  end
  out.finish_reason = FINISH[reason] or reason
  return out
end

function A.parse(body)
  if type(body.message) ~= "table" then
    return nil, "no message in the reply", "EPROTO"
  end
  local parts, err, code = fields_of(body)
  if not parts then
    return nil, err, code
  end
  parts.text = parts.text or ""
  parts.usage = usage_of(body)
  return parts
end

function A.error_message(body)
  if type(body) == "table" and type(body.error) == "string" then
    return body.error
  end
end

function A.is_context_error(status, body, message)
  return tostring(message):find("context length", 1, true) ~= nil
end

function A.stream_start()
  return { parts = {}, done = false, events = {} }
end

--- ev is one NDJSON line (text).
function A.stream_event(st, line, emit)
  local data, err = po.json.decode(line)
  if data == nil then
    return "malformed stream line: " .. err, "EJSON"
  end
  if type(data) ~= "table" then
    return bad_shape("a stream line", "an object", data)
  end
  st.events[#st.events + 1] = data
  if data.error ~= nil and data.error ~= po.json.null then
    return want(data.error, "string") or "stream error", "EHTTP"
  end
  local parts, perr, code = fields_of(data)
  if not parts then
    return perr, code
  end
  if parts.text and parts.text ~= "" then
    st.parts[#st.parts + 1] = parts.text
    emit(parts.text)
  end
  st.tools = parts.tool_calls or st.tools
  if data.done == true then
    st.done = true
    st.finish_reason = parts.finish_reason
    st.usage = usage_of(data)
  end
end

function A.stream_finish(st)
  if not st.done then
    return nil, "the stream ended before its done line", "EPROTO"
  end
  return { text = table.concat(st.parts), finish_reason = st.finish_reason, tool_calls = st.tools, usage = st.usage,
    raw = st.events }
end

return A
