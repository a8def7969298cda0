--- The Ollama wire format: chat (`POST {base_url}/api/chat`, streamed as
--- NDJSON) and embeddings (`POST {base_url}/api/embed`). base_url is the
--- host: OLLAMA_HOST, read the way Ollama's own client reads it, else
--- "http://localhost:11434". What each request field becomes on the wire:
--- docs/providers.md, "## Ollama".
local po = require "poengine"
local util = require "poengine.llm.util"

local want, bad_shape = util.want, util.bad_shape
local type, ipairs, tostring = type, ipairs, tostring
local concat = table.concat

local A = {
  name = "ollama",
  -- ollama.com's hosted API takes a Bearer key; a local server needs none
  -- and ignores one.
  key_env = "OLLAMA_API_KEY",
  base_url_env = "OLLAMA_HOST",
  stream_format = "ndjson",
  stream_type = "application/x-ndjson",
  input_includes_cached = true,
}

local DEFAULT_PORT = "11434"

--- A base URL from an Ollama host as people write it in OLLAMA_HOST, with
--- the defaults of Ollama's client: no scheme means http and, then, no port
--- means 11434 ("0.0.0.0" → "http://0.0.0.0:11434", ":8080" →
--- "http://127.0.0.1:8080", "ollama.com" → "https://ollama.com"); a URL
--- with a scheme is kept (its port defaults to the scheme's). Trailing
--- slashes are dropped. nil for nil or blank.
---@param s string?
---@return string?
function A.normalize_base_url(s)
  if type(s) ~= "string" then
    return nil
  end
  s = s:match("^%s*(.-)%s*$")
  if s == "" then
    return nil
  elseif s == "ollama.com" then
    return "https://ollama.com"
  end
  if not s:find("://", 1, true) then
    local hostport, path = s:match("^([^/]*)(.*)$")
    local has_port
    if hostport:sub(1, 1) == "[" then
      has_port = hostport:find("%]:%d+$") ~= nil
    elseif select(2, hostport:gsub(":", "")) > 1 then
      hostport, has_port = "[" .. hostport .. "]", false -- a bare IPv6 address
    else
      has_port = hostport:find(":", 1, true) ~= nil
    end
    if hostport == "" or hostport:sub(1, 1) == ":" then
      hostport = "127.0.0.1" .. hostport
    end
    s = "http://" .. hostport .. (has_port and "" or (":" .. DEFAULT_PORT)) .. path
  end
  return (s:gsub("/+$", ""))
end

function A.default_base_url()
  return A.normalize_base_url(os.getenv("OLLAMA_HOST")) or "http://localhost:" .. DEFAULT_PORT
end

local function unsupported(what, why)
  return nil, "ollama: " .. what .. " is not supported" .. (why and (" (" .. why .. ")") or ""), "EUNSUPPORTED"
end

-- ---- the request ----

-- A message's content as Ollama takes it: the text, and the images apart
-- as a list of base64 strings. nil, message, code for what it cannot carry.
local function content_of(content, where)
  if content == nil then
    return "" -- an assistant turn that only calls tools: Ollama wants a string
  elseif type(content) ~= "table" then
    return content
  end
  local texts, images = {}, {}
  for i, part in ipairs(content) do
    local at = where .. "[" .. i .. "]"
    if part.type == "text" then
      texts[#texts + 1] = part.text
    elseif part.type == "image" then
      -- A data: URL is the bytes already; a web URL Ollama would not fetch.
      local data = part.data or (type(part.url) == "string" and part.url:match("^data:[^,]-;base64,(.*)$"))
      if not data then
        return unsupported(at .. ": an image url", "Ollama takes images as base64: give data = <base64>")
      end
      images[#images + 1] = data
    else
      return unsupported(at .. ": a content part of type '" .. tostring(part.type) .. "'")
    end
  end
  return concat(texts, "\n"), images[1] and po.json.array(images) or nil
end

-- Tool calls of an assistant turn, with their arguments as an object, as
-- Ollama sends and takes them.
local function wire_calls(calls, where)
  local out = {}
  for i, c in ipairs(calls) do
    local args = c.arguments
    if args == nil and c.arguments_json ~= nil then
      local err
      args, err = po.json.decode(c.arguments_json)
      if type(args) ~= "table" then
        return nil, "ollama: " .. where .. "[" .. i .. "].arguments_json is not a JSON object"
          .. (err and (": " .. err) or ""), "EINVALID"
      end
    end
    out[i] = { id = c.id, ["function"] = { name = c.name, arguments = args or po.json.object() } }
  end
  return po.json.array(out)
end

-- The messages: the system prompt first; a tool result names its tool
-- (tool_name, which Ollama documents) besides the call it answers.
local function wire_messages(req)
  local out, names = {}, {}
  if req.system then
    out[1] = { role = "system", content = req.system }
  end
  for i, m in ipairs(req.messages) do
    local where = "messages[" .. i .. "]"
    local content, images, code = content_of(m.content, where .. ".content")
    if content == nil then
      return nil, images, code
    end
    local w = { role = m.role, content = content, images = images }
    if m.tool_calls then
      local calls, err, ecode = wire_calls(m.tool_calls, where .. ".tool_calls")
      if not calls then
        return nil, err, ecode
      end
      w.tool_calls = calls
      for _, c in ipairs(m.tool_calls) do
        if c.id then
          names[c.id] = c.name
        end
      end
    end
    if m.role == "tool" then
      w.tool_call_id = m.tool_call_id
      w.tool_name = m.name or names[m.tool_call_id]
    end
    out[#out + 1] = w
  end
  return po.json.array(out)
end

local function wire_tools(tools)
  local out = {}
  for i, t in ipairs(tools) do
    local f = t["function"] or t -- the OpenAI shape, should one get this far
    out[i] = { type = "function", ["function"] = { name = f.name, description = f.description,
      parameters = f.parameters } }
  end
  return po.json.array(out)
end

-- format: "json", or the schema itself. Ollama always holds the reply to
-- the schema (a grammar), so `strict` changes nothing, and it has no use
-- for the schema's name.
local function format_of(rf)
  if rf.type == "json" or rf.type == "json_object" then
    return "json"
  elseif rf.type == "json_schema" then
    local schema = rf.schema or (type(rf.json_schema) == "table" and rf.json_schema.schema)
    if type(schema) ~= "table" then
      return nil, "ollama: response_format.schema must be a table (a JSON schema)", "EINVALID"
    end
    return schema
  end
  return unsupported("response_format type '" .. tostring(rf.type) .. "'")
end

-- think: true, or the level Ollama documents ("low", "medium", "high").
local function think_of(r)
  if r.budget_tokens ~= nil then
    return unsupported("reasoning.budget_tokens", "Ollama's think takes true or a level: low, medium, high")
  end
  return r.effort or true
end

---@return string? url
---@return table|string headers, or the message
---@return table|string body, or the code
function A.request(cfg, req, model)
  local tc = req.tool_choice
  if tc ~= nil and tc ~= "auto" then
    local which = type(tc) == "table" and ("{ name = \"" .. tostring(tc.name) .. "\" }")
      or ("\"" .. tostring(tc) .. "\"")
    return unsupported("tool_choice " .. which, "Ollama has no tool_choice: the model decides, as with \"auto\"")
  end
  local messages, err, code = wire_messages(req)
  if not messages then
    return nil, err, code
  end
  local body = {
    model = model,
    messages = messages,
    stream = req.stream and true or false, -- Ollama streams unless told not to
    tools = req.tools and wire_tools(req.tools) or nil,
  }
  local options = { temperature = req.temperature, top_p = req.top_p, seed = req.seed, stop = req.stop,
    num_predict = req.max_tokens }
  if next(options) then
    body.options = options
  end
  if req.response_format then
    body.format, err, code = format_of(req.response_format)
    if body.format == nil then
      return nil, err, code
    end
  end
  if req.reasoning then
    body.think, err, code = think_of(req.reasoning)
    if body.think == nil then
      return nil, err, code
    end
  end
  return cfg.base_url .. "/api/chat", util.bearer_headers(cfg.api_key), body
end

-- ---- the reply ----

-- The counts are checked by the provider. eval_count includes the thinking
-- tokens, which Ollama does not count apart: no usage.reasoning.
local function usage_of(b)
  return { input = b.prompt_eval_count, output = b.eval_count, cached_read = 0, cache_write = 0 }
end

-- message.tool_calls as parts: ids are Ollama's when it sends them, else
-- none: the provider numbers them on from the conversation's earlier calls
-- (so a later turn's first call is not "call_1" again, which would make
-- the tool results of a conversation ambiguous).
local function calls_of(list)
  local out = {}
  for i, tc in ipairs(list) do
    local where = "message.tool_calls[" .. i .. "]"
    local fn = type(tc) == "table" and tc["function"]
    if type(fn) ~= "table" then
      return nil, bad_shape(where, "a tool call with a function", tc)
    end
    local name, id, ok
    name = want(fn.name, "string")
    if not name then
      return nil, bad_shape(where .. ".function.name", "a string", fn.name)
    end
    id, ok = want(tc.id, "string")
    if not ok then
      return nil, bad_shape(where .. ".id", "a string", tc.id)
    end
    local call = { id = id, name = name }
    local args = fn.arguments
    if type(args) == "string" then
      call.arguments_json = args -- a server imitating Ollama that sends a JSON string
    elseif args == nil or args == po.json.null then
      call.arguments, call.arguments_json = po.json.object(), "{}"
    elseif type(args) == "table" then
      call.arguments, call.arguments_json = args, po.json.encode(args)
    else
      return nil, bad_shape(where .. ".function.arguments", "an object", args)
    end
    out[i] = call
  end
  return out
end

-- Ollama says "stop" when the model called tools; the normalized reason
-- for that is "tool_calls", as every other vendor gives it.
local function finish_of(reason, has_calls)
  if has_calls and (reason == "stop" or reason == nil) then
    return "tool_calls"
  end
  return reason
end

-- message.content, message.thinking, message.tool_calls and done_reason of
-- a reply or a stream line, each of its documented type; nil, message,
-- "EPROTO" otherwise.
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
  out.reasoning, ok = want(msg.thinking, "string")
  if not ok then
    return nil, bad_shape("message.thinking", "a string", msg.thinking)
  end
  local calls
  calls, ok = want(msg.tool_calls, "table")
  if not ok then
    return nil, bad_shape("message.tool_calls", "a list", msg.tool_calls)
  end
  if calls then
    local err, code
    out.tool_calls, err, code = calls_of(calls)
    if not out.tool_calls then
      return nil, err, code
    end
  end
  out.finish_reason, ok = want(body.done_reason, "string")
  if not ok then
    return nil, bad_shape("done_reason", "a string", body.done_reason)
  end
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
  if parts.reasoning == "" then
    parts.reasoning = nil
  end
  if parts.tool_calls and #parts.tool_calls == 0 then
    parts.tool_calls = nil
  end
  parts.finish_reason = finish_of(parts.finish_reason, parts.tool_calls ~= nil)
  parts.usage = usage_of(body)
  return parts
end

-- ---- errors ----

function A.error_message(body)
  if type(body) == "table" and type(body.error) == "string" then
    return body.error
  end
end

--- The error code of a failed call. Ollama's error body is only
--- {"error": message}; the status says the rest. 400 (a bad request) and
--- 404 (no such model: `ollama pull` it) are not worth a retry: EINVALID.
---@param status integer? nil for an error line inside a stream
---@return string?
function A.error_code(status, body, message)
  message = tostring(message or A.error_message(body) or "")
  if message:find("context length", 1, true) then
    return "ECONTEXT"
  elseif status == 429 then
    return "ERATELIMIT"
  elseif status == 401 or status == 403 then
    return "EAUTH"
  elseif status == 400 or status == 404 then
    return "EINVALID"
  end
end

-- For providers that predate error_code.
function A.is_context_error(status, body, message)
  return A.error_code(status, body, message) == "ECONTEXT"
end

-- ---- streams ----

function A.stream_start()
  return { text = {}, thinking = {}, calls = {}, done = false, events = {} }
end

--- ev is one NDJSON line (text). An {"error": ...} line ends the call with
--- its message (the status was 200 when the stream began).
function A.stream_event(st, line, emit, emit_reasoning)
  local data, err = po.json.decode(line)
  if data == nil then
    return "malformed stream line: " .. err, "EJSON"
  end
  if type(data) ~= "table" then
    return bad_shape("a stream line", "an object", data)
  end
  st.events[#st.events + 1] = data
  if data.error ~= nil and data.error ~= po.json.null then
    local message = want(data.error, "string") or "stream error"
    return message, A.error_code(nil, data, message) or "EHTTP"
  end
  local parts, perr, code = fields_of(data)
  if not parts then
    return perr, code
  end
  if parts.reasoning and parts.reasoning ~= "" then
    st.thinking[#st.thinking + 1] = parts.reasoning
    if emit_reasoning then
      emit_reasoning(parts.reasoning)
    end
  end
  if parts.text and parts.text ~= "" then
    st.text[#st.text + 1] = parts.text
    emit(parts.text)
  end
  -- Each line's tool calls are new ones: they add up over the stream.
  for _, c in ipairs(parts.tool_calls or {}) do
    st.calls[#st.calls + 1] = c
  end
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
  local calls = st.calls[1] and st.calls or nil
  return { text = concat(st.text), reasoning = st.thinking[1] and concat(st.thinking) or nil,
    finish_reason = finish_of(st.finish_reason, calls ~= nil), tool_calls = calls, usage = st.usage,
    raw = st.events }
end

-- ---- embeddings ----

--- POST /api/embed with every text in one list (`input`), and
--- `dimensions` when opts asks for it (Ollama cuts the vectors to it).
---@param texts string[]
---@param opts? { dimensions?: integer }
function A.embed_request(cfg, texts, model, opts)
  local input = {}
  for i, t in ipairs(texts) do
    input[i] = t
  end
  local body = { model = model, input = po.json.array(input), dimensions = opts and opts.dimensions }
  return cfg.base_url .. "/api/embed", util.bearer_headers(cfg.api_key), body
end

--- The vectors of an /api/embed reply, in input order, and usage.input
--- from prompt_eval_count (nil when the server leaves it out).
function A.embed_parse(body)
  local list, ok = want(body.embeddings, "table")
  if not list then
    if ok then
      return nil, "no embeddings in the reply", "EPROTO"
    end
    return nil, bad_shape("embeddings", "a list", body.embeddings)
  end
  local vectors = {}
  for i, v in ipairs(list) do
    if type(v) ~= "table" then
      return nil, bad_shape("embeddings[" .. i .. "]", "a list of numbers", v)
    end
    local vec = {}
    for j, x in ipairs(v) do
      if type(x) ~= "number" then
        return nil, bad_shape("embeddings[" .. i .. "][" .. j .. "]", "a number", x)
      end
      vec[j] = x
    end
    vectors[i] = vec
  end
  local input
  input, ok = want(body.prompt_eval_count, "number")
  if not ok then
    return nil, bad_shape("prompt_eval_count", "a number", body.prompt_eval_count)
  end
  return { vectors = vectors, usage = { input = input } }
end

return A
