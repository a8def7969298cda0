--- The Anthropic Messages wire format (`POST {base_url}/v1/messages`).
--- base_url is the host, as in Anthropic's SDKs: "https://api.anthropic.com".
---
--- The normalized request (see docs/providers.md, "Anthropic") becomes a
--- Messages body: the system prompt goes to `system`, OpenAI-shaped tool
--- turns become `tool_use` / `tool_result` blocks, `response_format` becomes
--- a forced tool whose input is the answer, `reasoning` becomes `thinking`.
--- What Anthropic has no equivalent for (`seed`) is refused with
--- EUNSUPPORTED, never dropped.
local po = require "poengine"
local util = require "poengine.llm.util"

local want, bad_shape = util.want, util.bad_shape
local json = po.json
local type, pairs, ipairs, tostring = type, pairs, ipairs, tostring
local concat, sort = table.concat, table.sort

local A = {
  name = "anthropic",
  key_env = "ANTHROPIC_API_KEY",
  base_url_env = "ANTHROPIC_BASE_URL",
  stream_format = "sse",
  stream_type = "text/event-stream",
  input_includes_cached = false, -- input_tokens excludes cache reads and writes
  api_version = "2023-06-01",
  default_max_tokens = 1024, -- the API requires max_tokens
}

--- Thinking budgets for `reasoning.effort` alone: 1024 is the smallest
--- budget the API accepts; each step up quadruples it.
A.EFFORT_BUDGET = { low = 1024, medium = 4096, high = 16384 }

function A.default_base_url()
  return "https://api.anthropic.com"
end

local FINISH = { end_turn = "stop", stop_sequence = "stop", max_tokens = "length", tool_use = "tool_calls",
  refusal = "content_filter" }

local function unsupported(what)
  return nil, "anthropic: " .. what .. " is not supported", "EUNSUPPORTED"
end

local function invalid(what)
  return nil, "anthropic: " .. what, "EINVALID"
end

---------------------------------------------------------------------------
-- The request

-- One content part of the normalized form as an Anthropic content block.
-- A part already in Anthropic's shape (an image with a `source`, a
-- document, a tool_result …) goes as it is.
local function block_of(p, where)
  if type(p) ~= "table" then
    return invalid(where .. " must be a table, got " .. type(p))
  end
  if p.type == "text" then
    return { type = "text", text = p.text, cache_control = p.cache_control }
  elseif p.type == "image" and p.source == nil then
    local source
    if p.url then
      source = { type = "url", url = p.url }
    elseif p.data then
      if not p.media_type then
        return invalid(where .. ": an image given as data needs its media_type")
      end
      source = { type = "base64", media_type = p.media_type, data = p.data }
    else
      return invalid(where .. ": an image part needs a url or data")
    end
    return { type = "image", source = source, cache_control = p.cache_control }
  end
  return p
end

-- A message's content: a string as it is, a list of parts as blocks.
local function content_of(content, where)
  if type(content) ~= "table" then
    return content
  end
  local out = json.array()
  for i, p in ipairs(content) do
    local b, err, code = block_of(p, where .. ".content[" .. i .. "]")
    if not b then
      return nil, err, code
    end
    out[i] = b
  end
  return out
end

-- The input of a normalized tool call: its arguments table, or its
-- arguments_json decoded; the OpenAI wire shape ({ function = { name,
-- arguments } }) is read too, for conversations kept in that form.
local function tool_use_of(tc, where)
  if type(tc) ~= "table" then
    return invalid(where .. " must be a table")
  end
  local fn = type(tc["function"]) == "table" and tc["function"] or {}
  local input, text = tc.arguments, tc.arguments_json or fn.arguments
  if input == nil and type(text) == "string" then
    local err
    input, err = json.decode(text)
    if input == nil then
      return invalid(where .. ".arguments_json is not JSON: " .. tostring(err))
    end
  end
  if input == nil then
    input = json.object()
  elseif type(input) ~= "table" then
    return invalid(where .. ": the arguments must be a JSON object")
  end
  return { type = "tool_use", id = tc.id, name = tc.name or fn.name, input = input }
end

-- An assistant turn with tool calls (and the thinking blocks of the turn
-- that made them, which the API wants back unchanged): its content blocks.
local function assistant_blocks(m, where)
  local out = json.array()
  for _, b in ipairs(type(m.thinking_blocks) == "table" and m.thinking_blocks or {}) do
    out[#out + 1] = b
  end
  if type(m.content) == "string" then
    if m.content ~= "" then
      out[#out + 1] = { type = "text", text = m.content }
    end
  elseif m.content ~= nil then
    local blocks, err, code = content_of(m.content, where)
    if not blocks then
      return nil, err, code
    end
    for _, b in ipairs(blocks) do
      out[#out + 1] = b
    end
  end
  for j, tc in ipairs(m.tool_calls or {}) do
    local b, err, code = tool_use_of(tc, where .. ".tool_calls[" .. j .. "]")
    if not b then
      return nil, err, code
    end
    out[#out + 1] = b
  end
  return out
end

-- The messages and the system prompt of a normalized request, in
-- Anthropic's form: role "tool" turns become tool_result blocks of one
-- user turn (consecutive results share it, as the API asks), system
-- messages join `system`.
local function convert_messages(req)
  local out, results = json.array(), nil
  local system_parts = {}
  if type(req.system) == "table" then
    system_parts[1] = req.system
  end
  for i, m in ipairs(req.messages) do
    local where = "messages[" .. i .. "]"
    if m.role == "tool" then
      if type(m.tool_call_id) ~= "string" then
        return invalid(where .. ": a tool message needs its tool_call_id")
      end
      if not results then
        results = { role = "user", content = json.array() }
        out[#out + 1] = results
      end
      local content, err, code = content_of(m.content, where)
      if err then
        return nil, err, code
      end
      results.content[#results.content + 1] = { type = "tool_result", tool_use_id = m.tool_call_id, content = content }
    else
      results = nil
      local content, err, code
      if m.role == "system" then
        system_parts[#system_parts + 1] = m.content
      elseif m.role == "assistant" and (m.tool_calls or m.thinking_blocks) then
        content, err, code = assistant_blocks(m, where)
      else
        content, err, code = content_of(m.content, where)
      end
      if err then
        return nil, err, code
      end
      if m.role ~= "system" then
        out[#out + 1] = { role = m.role, content = content }
      end
    end
  end
  if #system_parts == 0 then
    return out, req.system
  end
  -- Some system text comes as parts (a cache_control on it, say): all of it
  -- goes as text blocks, in order.
  local system = json.array()
  local function add(c, where)
    if type(c) == "string" then
      system[#system + 1] = { type = "text", text = c }
      return true
    end
    local blocks, err, code = content_of(c, where)
    if not blocks then
      return nil, err, code
    end
    for _, b in ipairs(blocks) do
      system[#system + 1] = b
    end
    return true
  end
  if type(req.system) == "string" then
    add(req.system)
  end
  for _, c in ipairs(system_parts) do
    local ok, err, code = add(c, "system")
    if not ok then
      return nil, err, code
    end
  end
  return out, system
end

-- Flat tools ({ name, description, parameters }) as Anthropic's ({ name,
-- description, input_schema }); the OpenAI shape too, and tools already in
-- Anthropic's shape (a server tool, a cache_control) as they are.
local function tools_of(tools)
  local out = json.array()
  for i, t in ipairs(tools or {}) do
    local fn = type(t) == "table" and t["function"]
    if type(fn) == "table" then
      t = { name = fn.name, description = fn.description, parameters = fn.parameters }
    end
    if type(t) ~= "table" or t.input_schema ~= nil or (t.type ~= nil and t.type ~= "function") then
      out[i] = t
    else
      out[i] = { name = t.name, description = t.description, input_schema = t.parameters or { type = "object" },
        cache_control = t.cache_control }
    end
  end
  return out
end

local function tool_choice_of(tc)
  if tc == "auto" or tc == "none" then
    return { type = tc }
  elseif tc == "required" then
    return { type = "any" }
  elseif type(tc) == "table" and type(tc.name) == "string" then
    return { type = "tool", name = tc.name }
  elseif type(tc) == "table" and type(tc.type) == "string" then
    return tc -- already Anthropic's
  end
  return invalid("tool_choice must be \"auto\", \"none\", \"required\" or { name = }, got " .. tostring(tc))
end

--- The name of the tool a response_format is asked through, or nil.
---@param req table a normalized request
---@return string?
function A.format_tool(req)
  local rf = req and req.response_format
  if type(rf) == "table" then
    return type(rf.name) == "string" and rf.name or "response"
  end
end

-- response_format as a forced tool: its input schema is the format's
-- schema (any object for plain "json"), the model must call it, and the
-- reply's answer is that call's input.
local function add_format_tool(body, req)
  local rf = req.response_format
  if req.tool_choice ~= nil then
    return unsupported("response_format together with tool_choice (the format is itself a forced tool)")
  end
  if req.reasoning ~= nil then
    return unsupported("response_format together with reasoning (thinking allows no forced tool)")
  end
  local schema
  if rf.type == "json" then
    schema = { type = "object" }
  elseif rf.type == "json_schema" and type(rf.schema) == "table" then
    schema = rf.schema
    if schema.type ~= nil and schema.type ~= "object" then
      return unsupported("a response_format schema whose top level is not an object (a tool's input is an object)")
    end
  else
    return invalid("response_format must be { type = \"json\" } or { type = \"json_schema\", schema = }")
  end
  local name = A.format_tool(req)
  for _, t in ipairs(body.tools) do
    if type(t) == "table" and t.name == name then
      return invalid("response_format's name '" .. name .. "' is also the name of a tool")
    end
  end
  body.tools[#body.tools + 1] = { name = name, description = "Give the answer, as this tool's input.",
    input_schema = schema, strict = rf.strict }
  body.tool_choice = { type = "tool", name = name }
  return true
end

-- reasoning as thinking: budget_tokens if given, else effort's budget.
-- max_tokens must leave room for the answer after the thinking.
local function add_thinking(body, req)
  local r = req.reasoning
  local budget = r.budget_tokens or A.EFFORT_BUDGET[r.effort]
  if not budget then
    return invalid("reasoning needs budget_tokens or an effort of low, medium or high, got " .. tostring(r.effort))
  end
  body.thinking = { type = "enabled", budget_tokens = budget }
  if not req.max_tokens then
    body.max_tokens = budget + A.default_max_tokens
  elseif req.max_tokens <= budget then
    return invalid("max_tokens (" .. req.max_tokens .. ") must be greater than the thinking budget (" .. budget .. ")")
  end
  return true
end

function A.request(cfg, req, model)
  if req.seed ~= nil then
    return unsupported("seed")
  end
  local messages, system, code = convert_messages(req)
  if not messages then
    return nil, system, code
  end
  local stop = req.stop
  if type(stop) == "string" then
    stop = { stop }
  end
  local body = {
    model = model,
    max_tokens = req.max_tokens or A.default_max_tokens,
    messages = messages,
    system = system,
    temperature = req.temperature,
    top_p = req.top_p,
    stop_sequences = stop,
    tools = tools_of(req.tools),
    stream = req.stream or nil,
  }
  local ok, err
  if req.tool_choice ~= nil then
    body.tool_choice, err, code = tool_choice_of(req.tool_choice)
    if not body.tool_choice then
      return nil, err, code
    end
  end
  if req.response_format ~= nil then
    ok, err, code = add_format_tool(body, req)
    if not ok then
      return nil, err, code
    end
  end
  if req.reasoning ~= nil then
    ok, err, code = add_thinking(body, req)
    if not ok then
      return nil, err, code
    end
  end
  if #body.tools == 0 then
    body.tools = nil
  end
  local headers = { ["Content-Type"] = "application/json", ["anthropic-version"] = A.api_version }
  if cfg.api_key then
    headers["x-api-key"] = cfg.api_key
  end
  return cfg.base_url .. "/v1/messages", headers, body
end

---------------------------------------------------------------------------
-- The reply

-- usage merged into `into` (a stream sends it in parts); the counts
-- themselves are checked by the provider. Thinking tokens are part of
-- output_tokens; `reasoning` says how many, when the reply does.
local function usage_of(u, into)
  if u == nil then
    return into
  end
  into = into or {}
  into.input = u.input_tokens or into.input
  into.output = u.output_tokens or into.output
  into.cached_read = u.cache_read_input_tokens or into.cached_read
  into.cache_write = u.cache_creation_input_tokens or into.cache_write
  local details = type(u.output_tokens_details) == "table" and u.output_tokens_details or {}
  into.reasoning = details.thinking_tokens or into.reasoning or 0
  return into
end

-- The stop reason, normalized; nil, false when it is not a string.
local function finish_of(v)
  local reason, ok = want(v, "string")
  return FINISH[reason] or reason, ok
end

-- The parts of a reply's content blocks: text, reasoning (thinking kept
-- apart, with the blocks to send back), tool calls, and the format tool's
-- input as the text. A block from a stream carries its input as the JSON
-- text it arrived in (`input_json`).
local function content_parts(content, format)
  local text, reasoning, calls, thinking, answer = {}, {}, {}, {}, nil
  for i, block in ipairs(content) do
    local where = "content[" .. i .. "]"
    if type(block) ~= "table" then
      return nil, bad_shape(where, "an object", block)
    end
    if block.type == "text" then
      if type(block.text) ~= "string" then
        return nil, bad_shape(where .. ".text", "a string", block.text)
      end
      text[#text + 1] = block.text
    elseif block.type == "thinking" then
      local t, ok = want(block.thinking, "string")
      local sig, sok = want(block.signature, "string")
      if not ok or not sok then
        return nil, bad_shape(where .. (ok and ".signature" or ".thinking"), "a string",
          ok and block.signature or block.thinking)
      end
      reasoning[#reasoning + 1] = t
      thinking[#thinking + 1] = { type = "thinking", thinking = t or "", signature = sig }
    elseif block.type == "redacted_thinking" then
      thinking[#thinking + 1] = { type = "redacted_thinking", data = block.data }
    elseif block.type == "tool_use" then
      for _, f in ipairs { "id", "name" } do
        if type(block[f]) ~= "string" then
          return nil, bad_shape(where .. "." .. f, "a string", block[f])
        end
      end
      local input, input_json = block.input, block.input_json
      if input_json == nil and type(input) ~= "table" then
        return nil, bad_shape(where .. ".input", "an object", input)
      end
      if input_json == "" then
        input_json = "{}" -- a tool without parameters streams no input
      end
      if format and block.name == format and not answer then
        answer = input_json or json.encode(input)
      else
        calls[#calls + 1] = { id = block.id, name = block.name, arguments = input_json == nil and input or nil,
          arguments_json = input_json }
      end
    end
  end
  return {
    text = answer or concat(text),
    reasoning = #reasoning > 0 and concat(reasoning, "\n\n") or nil,
    thinking_blocks = #thinking > 0 and thinking or nil,
    tool_calls = #calls > 0 and calls or nil,
    answered = answer ~= nil,
  }
end

-- The finish reason and parts of a reply, checked; a reply answered by
-- the format tool finished as a plain answer does.
local function finish_parts(parts, stop_reason, usage)
  local finish, ok = finish_of(stop_reason)
  if not ok then
    return nil, bad_shape("stop_reason", "a string", stop_reason)
  end
  if parts.answered and not parts.tool_calls and finish == "tool_calls" then
    finish = "stop"
  end
  parts.answered = nil
  parts.finish_reason = finish
  parts.usage = usage
  return parts
end

--- The parts of a whole reply. req (the normalized request, optional):
--- when it asked for a response_format, the format tool's input is the
--- text rather than a tool call.
---@param body table
---@param req? table
function A.parse(body, req)
  if type(body.content) ~= "table" then
    return nil, "no content in the reply", "EPROTO"
  end
  local parts, err, code = content_parts(body.content, A.format_tool(req))
  if not parts then
    return nil, err, code
  end
  local usage, ok = want(body.usage, "table")
  if not ok then
    return nil, bad_shape("usage", "an object", body.usage)
  end
  return finish_parts(parts, body.stop_reason, usage_of(usage))
end

---------------------------------------------------------------------------
-- Errors

-- The documented HTTP status of each error type, for an error that comes
-- as a stream event (the status was 200).
local STATUS_OF = { invalid_request_error = 400, authentication_error = 401, billing_error = 402,
  permission_error = 403, not_found_error = 404, request_too_large = 413, rate_limit_error = 429, api_error = 500,
  timeout_error = 504, overloaded_error = 529 }

function A.error_message(body)
  if type(body) == "table" and type(body.error) == "table" then
    return (want(body.error.message, "string")), (want(body.error.type, "string"))
  end
end

--- The error code of a failed call, from its status and documented error
--- body: EOVERLOADED (529, retried), ERATELIMIT (429, retried after
--- Retry-After), ECONTEXT (the prompt is longer than the context window),
--- EQUOTA (credit or billing: never retried), EINVALID (the request's own
--- fault: not retried), EAUTH (401/403); nil for the rest (EHTTP).
---@param status integer
---@param body any the decoded error body
---@param message? string
---@return string?
function A.error_code(status, body, message)
  local err = type(body) == "table" and type(body.error) == "table" and body.error or {}
  local etype = err.type
  local text = tostring(message or err.message or ""):lower()
  if etype == "overloaded_error" or status == 529 then
    return "EOVERLOADED"
  elseif etype == "rate_limit_error" or status == 429 then
    return "ERATELIMIT"
  elseif etype == "authentication_error" or etype == "permission_error" or status == 401 or status == 403 then
    return "EAUTH"
  elseif etype == "billing_error" or status == 402 or text:find("credit balance is too low", 1, true) then
    return "EQUOTA"
  elseif text:find("prompt is too long", 1, true) or text:find("exceed context limit", 1, true) then
    return "ECONTEXT"
  elseif etype == "invalid_request_error" or etype == "request_too_large" or status == 400 or status == 413 then
    return "EINVALID"
  end
end

--- For callers that predate error_code.
function A.is_context_error(status, body, message)
  return A.error_code(status, body, message) == "ECONTEXT"
end

---------------------------------------------------------------------------
-- Streaming

--- One state per call. req (the normalized request, optional): as for parse.
function A.stream_start(req)
  return { blocks = {}, text = {}, thought = {}, done = false, events = {}, format = A.format_tool(req) }
end

-- The event's fields this adapter reads, each of its documented type.
local EVENT_FIELDS = { type = "string", message = "table", delta = "table", usage = "table", error = "table",
  index = "number", content_block = "table" }

-- The block a delta adds to; a text or thinking delta may come without its
-- content_block_start (the block's kind is plain from the delta), a tool's
-- input may not (its id and name come only there).
local IMPLIED = { text_delta = "text", thinking_delta = "thinking", signature_delta = "thinking" }

local function block_at(st, index, delta_type)
  local b = st.blocks[index]
  if not b and IMPLIED[delta_type] then
    b = { type = IMPLIED[delta_type], pieces = {} }
    st.blocks[index] = b
  end
  return b
end

-- A delta's string field, or an error pair when it is not a string.
local function delta_string(delta, field)
  local v, ok = want(delta[field], "string")
  if not ok then
    return nil, bad_shape("delta." .. field, "a string", delta[field])
  end
  return v or ""
end

-- A piece of a block's text, thinking or tool input. Text and thinking are
-- kept in the order they arrive, the order they were handed on in.
local function add_piece(st, b, v, emit, emit_reasoning)
  if b.type == "text" then
    st.text[#st.text + 1] = v
    emit(v)
  elseif b.type == "thinking" then
    b.pieces[#b.pieces + 1] = v
    st.thought[#st.thought + 1] = v
    if emit_reasoning then
      emit_reasoning(v)
    end
  else
    b.pieces[#b.pieces + 1] = v
    if st.format and b.name == st.format then
      emit(v) -- the format tool's input is the answer
    end
  end
end

local function on_delta(st, data, emit, emit_reasoning)
  local delta = want(data.delta, "table") or {}
  local dtype = delta.type
  local b = block_at(st, want(data.index, "number") or 0, dtype)
  local field = dtype == "text_delta" and "text" or dtype == "input_json_delta" and "partial_json"
    or dtype == "thinking_delta" and "thinking" or dtype == "signature_delta" and "signature"
  if not field then
    return -- citations and kinds added later: nothing this adapter keeps
  end
  local v, err, code = delta_string(delta, field)
  if not v then
    return err, code
  end
  if not b then
    return "a " .. dtype .. " for content block " .. tostring(data.index) .. " before its content_block_start", "EPROTO"
  end
  if IMPLIED[dtype] and b.type ~= IMPLIED[dtype] then
    return "a " .. dtype .. " for content block " .. tostring(data.index) .. ", a " .. tostring(b.type) .. " block",
      "EPROTO"
  end
  if field == "signature" then
    b.signature = (b.signature or "") .. v
    return
  end
  add_piece(st, b, v, emit, emit_reasoning)
end

-- A content_block_start: the block's kind, and for a tool its id and name.
local function on_block_start(st, data, emit, emit_reasoning)
  local cb = want(data.content_block, "table") or {}
  local b = { type = cb.type, id = cb.id, name = cb.name, data = cb.data, pieces = {} }
  st.blocks[want(data.index, "number") or 0] = b
  if cb.type == "thinking" and #st.thought > 0 then
    -- Thinking blocks are joined by a blank line, in the reply's reasoning.
    st.thought[#st.thought + 1] = "\n\n"
    if emit_reasoning then
      emit_reasoning("\n\n")
    end
  end
  -- A block may open with some of its text already.
  local first = cb.type == "text" and cb.text or cb.type == "thinking" and cb.thinking or nil
  if type(first) == "string" and first ~= "" then
    add_piece(st, b, first, emit, emit_reasoning)
  end
end

-- An error event: the error's message and code, with the status the same
-- error would have had as a reply (the router's retry rules read it).
local function on_error(data)
  local e = want(data.error, "table") or {}
  local etype = want(e.type, "string")
  local status = STATUS_OF[etype] or 500
  local message = want(e.message, "string") or "stream error"
  return message, A.error_code(status, data, message) or "EHTTP", { status = status, error_type = etype }
end

function A.stream_event(st, ev, emit, emit_reasoning)
  local data, err = json.decode(ev.data)
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
  if kind == "message_start" then
    local message = want(data.message, "table") or {}
    local usage, ok = want(message.usage, "table")
    if not ok then
      return bad_shape("message.usage", "an object", message.usage)
    end
    st.usage = usage_of(usage, st.usage)
  elseif kind == "content_block_start" then
    on_block_start(st, data, emit, emit_reasoning)
  elseif kind == "content_block_delta" then
    return on_delta(st, data, emit, emit_reasoning)
  elseif kind == "message_delta" then
    local delta = want(data.delta, "table") or {}
    local _, ok = finish_of(delta.stop_reason)
    if not ok then
      return bad_shape("delta.stop_reason", "a string", delta.stop_reason)
    end
    st.stop_reason = delta.stop_reason or st.stop_reason
    st.usage = usage_of(want(data.usage, "table"), st.usage)
  elseif kind == "message_stop" then
    st.done = true
  elseif kind == "error" then
    return on_error(data)
  end
end

-- The streamed blocks, in index order, in the shape of a whole reply's;
-- the text as one block, in the order it arrived.
local function streamed_content(st)
  local indices = {}
  for i in pairs(st.blocks) do
    indices[#indices + 1] = i
  end
  sort(indices)
  local content = { { type = "text", text = concat(st.text) } }
  for _, i in ipairs(indices) do
    local b = st.blocks[i]
    local joined = concat(b.pieces)
    if b.type == "thinking" then
      content[#content + 1] = { type = "thinking", thinking = joined, signature = b.signature }
    elseif b.type == "redacted_thinking" then
      content[#content + 1] = { type = "redacted_thinking", data = b.data }
    elseif b.type == "tool_use" then
      content[#content + 1] = { type = "tool_use", id = b.id, name = b.name, input_json = joined }
    end
  end
  return content
end

function A.stream_finish(st)
  if not st.done then
    return nil, "the stream ended before message_stop", "EPROTO"
  end
  local parts, err, code = content_parts(streamed_content(st), st.format)
  if not parts then
    return nil, err, code
  end
  parts, err, code = finish_parts(parts, st.stop_reason, st.usage)
  if not parts then
    return nil, err, code
  end
  if #st.thought > 0 then
    parts.reasoning = concat(st.thought)
  end
  parts.raw = st.events
  return parts
end

return A
