--- LLM providers: one object per configured endpoint, turning a normalized
--- request into a wire request (through an adapter: openai, anthropic,
--- ollama) and the reply back into a normalized response; or, for the "lua"
--- kind, calling a user function.
---
---   local p = po.llm.provider("openai", { base_url = "http://localhost:8000/v1", model = "qwen" })
---   local res, err, code = p:complete({ prompt = "hi", stream = true }, { on_token = io.write })
local po = require "poengine"
local util = require "poengine.llm.util"
local prices = require "poengine.llm.prices"
local limits = require "poengine.llm.limits"
local requests = require "poengine.llm.request"
local response = require "poengine.llm.response"

local M = {}

local now = po.now
local type, pairs, ipairs, tostring, error, pcall = type, pairs, ipairs, tostring, error, pcall
local concat = table.concat

--- Adapters by provider kind (a script may add its own with the same fields).
M.adapters = {
  openai = require "poengine.llm.openai",
  anthropic = require "poengine.llm.anthropic",
  ollama = require "poengine.llm.ollama",
  azure = require "poengine.llm.azure",
}

-- The built-in kinds, in the order messages list them.
local BUILT_IN = { openai = 1, anthropic = 2, ollama = 3, azure = 4 }

--- The provider kinds M.new accepts: the built-in adapters, then those a
--- script added to M.adapters (alphabetically), then "lua".
---@return string[]
function M.kinds()
  local list = {}
  for k in pairs(M.adapters) do
    list[#list + 1] = k
  end
  table.sort(list, function(a, b)
    local ra, rb = BUILT_IN[a], BUILT_IN[b]
    if ra and rb then
      return ra < rb
    elseif ra or rb then
      return ra ~= nil
    end
    return a < b
  end)
  list[#list + 1] = "lua"
  return list
end

local Provider = {}
Provider.__index = Provider
Provider.__name = "poengine.llm.provider"

local OPTIONS = {
  base_url = "string", api_key = "string", api_key_env = "string", model = "string", timeout = "number",
  ttft_timeout = "number", idle_timeout = "number", connect_timeout = "number", headers = "table", name = "string",
  fn = "function", input_includes_cached = "boolean", max_body = "number", max_event = "number",
  deployment = "string", api_version = "string", dimensions = "number",
}

-- The base URL from the environment: the adapter's variable
-- (A.base_url_env), set and not empty, read as the vendor's own tools read
-- it: through A.normalize_base_url when the adapter has one (Ollama's
-- "gpu-box" is http://gpu-box:11434), else with "http://" put in front of
-- a bare host.
local function env_base_url(adapter)
  local name = adapter.base_url_env
  local v = name and os.getenv(name)
  if not v or v == "" then
    return nil
  end
  if adapter.normalize_base_url then
    return adapter.normalize_base_url(v)
  end
  if not v:find("://", 1, true) then
    v = "http://" .. v
  end
  return v
end

--- The default limits on what a server sends, in bytes: a whole reply
--- (streamed or not) and one event of a stream.
M.MAX_BODY = 64 * 1024 * 1024
M.MAX_EVENT = 8 * 1024 * 1024

--- Creates a provider. kind: "openai" | "anthropic" | "ollama" | "lua".
--- opts: base_url, api_key (or api_key_env, default the vendor's variable),
--- model (what it is sent, overriding the request's), timeout (default 120 s),
--- ttft_timeout (until the first response byte, default 30 s), idle_timeout
--- (longest silence in a stream, default ttft_timeout), connect_timeout
--- (default 10 s), headers (extra), name (label in stats; default kind),
--- max_body (the largest reply, default 64 MiB), max_event (the largest
--- event or line of a stream, default 8 MiB), deployment and api_version
--- (Azure OpenAI), dimensions (embeddings); every option reaches the
--- adapter as cfg.options, the key and fn left out;
--- for "lua": fn(request, on_token, on_reasoning) returning a response table or nil, message, code.
---@param kind string
---@param opts? table
function M.new(kind, opts)
  opts = opts or {}
  if type(kind) ~= "string" then
    error("po.llm.provider: kind must be a string, got " .. type(kind), 2)
  end
  if type(opts) ~= "table" then
    error("po.llm.provider: options must be a table, got " .. type(opts), 2)
  end
  require("poengine.util.options").check("po.llm.provider", opts, OPTIONS, 2)
  for _, k in ipairs { "max_body", "max_event" } do
    if opts[k] and not (opts[k] >= 1) then
      error("po.llm.provider: " .. k .. " must be a positive number of bytes, got " .. tostring(opts[k]), 2)
    end
  end
  local adapter = M.adapters[kind]
  if kind == "lua" then
    if not opts.fn then
      error("po.llm.provider: the lua provider needs fn = function(request, on_token)", 2)
    end
  elseif not adapter then
    error("po.llm.provider: unknown provider '" .. kind .. "' (" .. concat(M.kinds(), ", ") .. ")", 2)
  end
  local key = opts.api_key
  local key_env = opts.api_key_env or (adapter and adapter.key_env)
  if not key and key_env then
    key = os.getenv(key_env)
    if key == "" then
      key = nil
    end
  end
  local base_url = opts.base_url or (adapter and (env_base_url(adapter) or adapter.default_base_url()))
  if base_url then
    base_url = base_url:gsub("/+$", "")
  end
  local self = setmetatable({
    kind = kind,
    name = opts.name or kind,
    adapter = adapter,
    base_url = base_url,
    model = opts.model,
    timeout = opts.timeout or 120,
    ttft_timeout = opts.ttft_timeout or 30,
    connect_timeout = opts.connect_timeout or 10,
    extra_headers = opts.headers,
    fn = opts.fn,
    input_includes_cached = opts.input_includes_cached,
    max_body = opts.max_body or M.MAX_BODY,
    max_event = opts.max_event or M.MAX_EVENT,
  }, Provider)
  -- What the adapter is told of its creation options: all but the key
  -- (which it gets as cfg.api_key) and a lua provider's function.
  local options = {}
  for k, v in pairs(opts) do
    if k ~= "api_key" and k ~= "fn" then
      options[k] = v
    end
  end
  self.options = options
  self.idle_timeout = opts.idle_timeout or self.ttft_timeout
  -- The key lives in a closure, not a field: dumping the provider (a log, a
  -- cassette, an error with a table in it) cannot show it.
  self.key = function()
    return key
  end
  return self
end

function Provider:__tostring()
  return "poengine.llm.provider (" .. self.name .. ")"
end

local function null_to_nil(v)
  if v == po.json.null then
    return nil
  end
  return v
end

local USAGE_FIELDS = { "input", "output", "cached_read", "cache_write", "reasoning" }

--- Checks what an adapter (or a lua provider's fn) made of a reply before it
--- is used: returns message, "EPROTO" when a field has the wrong type or a
--- token count is not a finite non-negative integer (a 400-digit count
--- decodes as inf), nothing when all is well. For adapters of your own.
---@param parts table
---@return string? message
---@return string? code
function M.check_parts(parts)
  local checks = { { "text", "string", "a string" }, { "finish_reason", "string", "a string" },
    { "tool_calls", "table", "a list" }, { "usage", "table", "an object" }, { "reasoning", "string", "a string" } }
  for _, c in ipairs(checks) do
    local _, ok = util.want(parts[c[1]], c[2])
    if not ok then
      return util.bad_shape(c[1], c[3], parts[c[1]])
    end
  end
  local u = parts.usage or {}
  for _, k in ipairs(USAGE_FIELDS) do
    local v = null_to_nil(u[k])
    if v ~= nil and not util.is_count(v) then
      return "bad reply: usage." .. k .. " is not a token count (" .. tostring(v) .. ")", "EPROTO"
    end
  end
end

local function count_of(v)
  v = tonumber(null_to_nil(v))
  return v and math.floor(v)
end

-- Whether an adapter's output count already holds the reasoning tokens
-- (OpenAI's completion_tokens, Anthropic's output_tokens and Ollama's
-- eval_count all do); one that counts them apart says
-- output_includes_reasoning = false.
local function includes_reasoning(adapter)
  return not adapter or adapter.output_includes_reasoning ~= false
end

-- Fills in the normalized response from the adapter's parts, or returns
-- nil, message, "EPROTO", info when a tool call's arguments or the asked-for
-- JSON do not parse (info.cost and info.tokens: what the reply cost, so
-- that the router still charges it). A count the server did not send is
-- estimated (from the request, or the reply's text) with the tpm limit's
-- estimator, and usage.estimated says so: a budget then never counts such
-- a reply as free. usage.output always counts the reasoning tokens.
local function finish_response(self, req, parts, model, t0, ttft, raw)
  local u = parts.usage or {}
  local usage = {
    input = count_of(u.input),
    output = count_of(u.output),
    cached_read = count_of(u.cached_read) or 0,
    cache_write = count_of(u.cache_write) or 0,
    reasoning = count_of(u.reasoning) or 0,
  }
  if not usage.input then
    usage.input, usage.estimated = limits.estimate_input(req), true
  end
  if not usage.output then
    usage.estimated = true
    usage.output = limits.estimate_text(parts.text or "") + limits.estimate_text(parts.reasoning or "")
  elseif not includes_reasoning(self.adapter) then
    usage.output = usage.output + usage.reasoning
  end
  local includes = self.input_includes_cached
  if includes == nil then
    includes = self.adapter and self.adapter.input_includes_cached
  end
  local latency = now() - t0
  local cost = (prices.cost(model, usage, includes))
  local text, finish = parts.text or "", null_to_nil(parts.finish_reason)
  local calls, err, code = response.tool_calls(parts.tool_calls, response.count_calls(req.messages))
  local decoded
  if not err and req.response_format then
    decoded, err, code = response.json(text, finish)
  end
  if err then
    return nil, err, code, { cost = cost, tokens = usage.input + usage.output }
  end
  return {
    text = text,
    finish_reason = finish,
    tool_calls = calls,
    reasoning = null_to_nil(parts.reasoning),
    thinking_blocks = parts.thinking_blocks,
    json = decoded,
    usage = usage,
    cost = cost,
    provider = self.name,
    model = model,
    latency = latency,
    ttft = ttft or latency,
    cached = false,
    raw = parts.raw or raw,
  }
end

-- The error triple, scrubbed of the key and credential headers, with info
-- for the router.
local function fail(self, message, code, info)
  return nil, util.scrub(message, util.secrets(self)), code, info or {}
end

-- A base URL whose path has no version segment ("/v1", "/v1beta"): the
-- usual cause of a 404 from an OpenAI-compatible server.
local function version_hint(self, status)
  local hint = self.adapter.version_hint
  local path = self.base_url and self.base_url:match("^%a[%w+.-]*://[^/]+(.*)$") or ""
  if status ~= 404 or not hint or path:find("/v%d") then
    return ""
  end
  return " (did you mean " .. self.base_url .. hint .. "?)"
end

local function http_failure(self, res, body_text, model)
  local adapter = self.adapter
  local decoded = po.json.decode(body_text)
  local message, kind = adapter.error_message(decoded)
  message = message or (body_text ~= "" and body_text:sub(1, 200)) or "no body"
  local info = { status = res.status, retry_after = util.retry_after(res.headers["retry-after"]), error_type = kind }
  local code = adapter.error_code and adapter.error_code(res.status, decoded, message)
  if not code and adapter.is_context_error and adapter.is_context_error(res.status, decoded, message) then
    code = "ECONTEXT" -- an adapter written before error_code
  end
  code = code or "EHTTP"
  info.context_window = code == "ECONTEXT" or nil
  return fail(self, self.name .. " " .. model .. ": HTTP " .. res.status .. ": " .. tostring(message)
    .. version_hint(self, res.status), code, info)
end

local function lua_complete(self, req, model, on_token, on_reasoning)
  local t0 = now()
  local ttft
  local emitted = false
  local emit = function(text)
    ttft = ttft or (now() - t0)
    emitted = true
    if on_token then
      on_token(text)
    end
  end
  local call_req = util.copy(req)
  call_req.model = model
  local think = on_reasoning and function(text)
    ttft = ttft or (now() - t0)
    on_reasoning(text)
  end
  local ok, res, err, code, info = pcall(self.fn, call_req, emit, think)
  if not ok then
    return fail(self, self.name .. ": fn raised: " .. tostring(res), "ERUNTIME")
  end
  if res == nil then
    return fail(self, tostring(err or "fn returned nil"), code or "EFAILED", type(info) == "table" and info or {})
  end
  if type(res) == "string" then
    res = { text = res }
  end
  if type(res) ~= "table" then
    return fail(self, self.name .. ": fn must return a response table or a string, got " .. type(res), "EPROTO")
  end
  local bad, bcode = M.check_parts(res)
  if bad then
    return fail(self, self.name .. ": fn's response: " .. bad, bcode)
  end
  if req.stream and not emitted and res.text and res.text ~= "" then
    emit(res.text)
  end
  local out, ferr, fcode, finfo = finish_response(self, req, res, res.model or model, t0, ttft, res.raw)
  if not out then
    return fail(self, self.name .. ": " .. ferr, fcode, finfo)
  end
  if res.cost then
    out.cost = res.cost
  end
  return out
end

--- Sends one request and returns the normalized response, or
--- nil, message, code, info (info: status, retry_after, context_window,
--- stage = "ttfb" when nothing arrived in time). Waits: inside po.async it
--- yields the task. opts.on_token(text) receives streamed text,
--- opts.on_reasoning(text) streamed reasoning (thinking) text.
---@param request table
---@param opts? { on_token?: fun(text: string), on_reasoning?: fun(text: string), normalized?: boolean }
function Provider:complete(request, opts)
  opts = opts or {}
  local req = opts.normalized and request or util.normalize("provider:complete", request)
  -- An Azure deployment names its model: the deployment stands in for one.
  local model = self.model or req.model or self.options.deployment
  if not model then
    error("provider:complete: no model: give the provider a model or the request one", 2)
  end
  local on_token, on_reasoning = opts.on_token, opts.on_reasoning
  if self.kind == "lua" then
    return lua_complete(self, req, model, on_token, on_reasoning)
  end
  local adapter = self.adapter
  local url, headers, body = adapter.request({ base_url = self.base_url, api_key = self.key(),
    options = self.options }, req, model)
  if not url then
    -- headers is the message, body the code: a field this vendor lacks.
    return fail(self, self.name .. " " .. model .. ": " .. tostring(headers), body or "EUNSUPPORTED",
      { unsupported = true })
  end
  body = requests.merge_extra(body, req.extra)
  for k, v in pairs(self.extra_headers or {}) do
    headers[k] = v
  end
  local stream = req.stream and true or false
  local t0 = now()
  local ttft
  local chunks = {}
  local st = stream and adapter.stream_start(req) or nil
  local stream_err -- { message, code, info } from inside the stream
  local emit = function(text)
    ttft = ttft or (now() - t0)
    if on_token then
      on_token(text)
    end
  end
  local think = on_reasoning and function(text)
    ttft = ttft or (now() - t0)
    on_reasoning(text)
  end
  local function stop(msg, code, info)
    stream_err = { msg, code, info }
    error(stream_err) -- stops the transfer
  end
  local function on_event(ev)
    if stream_err then
      return
    end
    local msg, code, info = adapter.stream_event(st, ev, emit, think)
    if msg then
      stop(msg, code, info)
    end
  end
  local parser
  if stream then
    local kind = adapter.stream_format == "ndjson" and "poengine.llm.ndjson" or "poengine.llm.sse"
    parser = require(kind).new(on_event, { max_event = self.max_event })
  end
  -- The body arrives through on_chunk, streamed or not, so that one longer
  -- than max_body is stopped as it grows instead of being held whole.
  local received, max_body = 0, self.max_body
  local function on_chunk(chunk, status, ctype)
    received = received + #chunk
    if received > max_body then
      stop("the reply is longer than max_body (" .. max_body .. " bytes)", "ETOOBIG")
    end
    chunks[#chunks + 1] = chunk
    -- Only a reply of the stream's type is parsed as it arrives: a server
    -- that answers a stream request in one JSON piece is read whole below.
    if parser and status >= 200 and status < 300 and (ctype or ""):lower():find(adapter.stream_type, 1, true) then
      local ok, msg, code = parser:feed(chunk)
      if not ok then
        stop(msg, code)
      end
    end
  end
  local fut, err, code = po.http.request {
    method = "POST",
    url = url,
    headers = headers,
    body = po.json.encode(body),
    timeout = self.timeout,
    connect_timeout = self.connect_timeout,
    ttfb_timeout = self.ttft_timeout,
    idle_timeout = self.idle_timeout, -- a plain reply can stall after its headers too
    on_chunk = on_chunk,
  }
  if not fut then
    return fail(self, err, code)
  end
  local res
  res, err, code = fut:wait()
  if stream_err then
    local info = stream_err[3] or {}
    return fail(self, self.name .. " " .. model .. ": " .. tostring(stream_err[1]), stream_err[2], info)
  end
  if not res then
    local info = { transport = true }
    if code == "ETIMEDOUT" and tostring(err):find("ttfb_timeout", 1, true) then
      info.stage = "ttfb"
    end
    return fail(self, err, code, info)
  end
  local text = concat(chunks)
  if res.status < 200 or res.status >= 300 then
    return http_failure(self, res, text, model)
  end
  local ctype = (res.headers["content-type"] or ""):lower()
  local parts, perr
  local one_piece = not stream or not ctype:find(adapter.stream_type, 1, true)
  if not one_piece then
    local _, ferr, fcode = parser:finish()
    if fcode then
      return fail(self, self.name .. " " .. model .. ": " .. ferr, fcode, {})
    end
    parts, perr, code = adapter.stream_finish(st)
    if not parts then
      return fail(self, self.name .. " " .. model .. ": " .. perr, code, {})
    end
  else
    if not ctype:find("json", 1, true) then
      return fail(self, self.name .. " " .. model .. ": expected a JSON reply, got Content-Type '" .. ctype .. "'",
        "EPROTO", { status = res.status })
    end
    local decoded
    decoded, perr = po.json.decode(text)
    if decoded == nil then
      return fail(self, self.name .. " " .. model .. ": malformed JSON reply: " .. perr, "EJSON", { status = res.status })
    end
    if type(decoded) ~= "table" then
      return fail(self, self.name .. " " .. model .. ": " .. util.bad_shape("the reply", "an object", decoded), "EPROTO",
        { status = res.status })
    end
    parts, perr, code = adapter.parse(decoded, req)
    if not parts then
      return fail(self, self.name .. " " .. model .. ": " .. perr, code or "EPROTO", { status = res.status })
    end
    parts.raw = decoded
  end
  local bad, bcode = M.check_parts(parts)
  if bad then
    return fail(self, self.name .. " " .. model .. ": " .. bad, bcode, { status = res.status })
  end
  if stream and one_piece then -- a server that answered a stream request in one piece
    if think and parts.reasoning and parts.reasoning ~= "" then
      think(parts.reasoning)
    end
    if parts.text and parts.text ~= "" then
      emit(parts.text)
    end
  end
  local out, ferr, fcode, finfo = finish_response(self, req, parts, model, t0, ttft)
  if not out then
    finfo.status = res.status
    return fail(self, self.name .. " " .. model .. ": " .. ferr, fcode, finfo)
  end
  return out
end

--- Like complete, as a future (a po.async task).
function Provider:complete_async(request, opts)
  return po.async(self.complete, self, request, opts)
end

return M
