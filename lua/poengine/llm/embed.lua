--- po.llm.embed and po.llm.embedder: text embeddings through a provider's
--- adapter (OpenAI `/v1/embeddings`, Ollama `/api/embed`), batched, cached,
--- with usage and cost; and an embedder for the semantic cache.
---
---   local p = po.llm.provider("openai", { model = "text-embedding-3-small" })
---   local out = assert(po.llm.embed(p, { "first text", "second text" }, { dimensions = 256 }))
---   print(#out.vectors, out.usage.input, out.cost)
---
--- An adapter offers embeddings with `embed_request(cfg, texts, model,
--- { dimensions = })` → url, headers, body (or nil, message, code) and
--- `embed_parse(decoded)` → { vectors = { ... }, usage = { input = } } in
--- input order (or nil, message, code). See docs/scripting.md, "po.llm.embed".
local po = require "poengine"
local util = require "poengine.llm.util"
local prices = require "poengine.llm.prices"
local limits = require "poengine.llm.limits"

local M = {}

local type, pairs, ipairs, tostring, error, getmetatable = type, pairs, ipairs, tostring, error, getmetatable
local floor = math.floor

--- Texts per request unless opts.batch says otherwise.
M.BATCH = 64

local OPTIONS = { batch = "number", cache = "table", dimensions = "number", model = "string", ttl = "number" }
local EMBEDDER_OPTIONS = { cache = "table", dimensions = "number", model = "string", ttl = "number" }

local function check_opts(fname, opts, allowed)
  opts = opts or {}
  if type(opts) ~= "table" then
    error(fname .. ": options must be a table, got " .. type(opts), 3)
  end
  require("poengine.util.options").check(fname, opts, allowed, 3)
  for _, k in ipairs { "batch", "dimensions" } do
    local v = opts[k]
    if v ~= nil and (v < 1 or v ~= floor(v)) then
      error(fname .. ": " .. k .. " must be a positive integer, got " .. tostring(v), 3)
    end
  end
  local c = opts.cache
  if c ~= nil then
    if type(c.get) ~= "function" or type(c.set) ~= "function" then
      error(fname .. ": cache must be a po.cache", 3)
    end
    -- A semantic tier would answer a text with a similar text's vector,
    -- and with a function embedder built on this cache it would recurse.
    if c._semantic then
      error(fname .. ": cache must have no semantic tier (open a handle without `semantic`; "
        .. "it may share the store and namespace)", 3)
    end
  end
  return opts
end

-- The provider and the model: deployment is a provider, a router's
-- deployment ({ provider = <provider>, model = }) or a deployment spec
-- ({ provider = "openai", model =, base_url =, ... }).
local function resolve(fname, deployment, opts)
  local p, model = deployment, nil
  if type(deployment) == "table" and getmetatable(deployment) == nil and deployment.provider ~= nil then
    if type(deployment.provider) == "string" then
      local popts = {}
      for k, v in pairs(deployment) do
        if k ~= "provider" then
          popts[k] = v
        end
      end
      p = require("poengine.llm.provider").new(deployment.provider, popts)
    else
      p, model = deployment.provider, deployment.model
    end
  end
  if type(p) ~= "table" or type(p.complete) ~= "function" then
    error(fname .. ": deployment must be a provider, a router deployment or { provider = kind, ... }, got "
      .. type(p), 3)
  end
  model = opts.model or model or p.model or (p.options and p.options.deployment)
  if type(model) ~= "string" then
    error(fname .. ": no model: give the provider, the deployment or opts.model one", 3)
  end
  return p, model
end

local function unsupported(p)
  local a = p.adapter
  if not (a and a.embed_request and a.embed_parse) then
    return tostring(p.name or p.kind) .. ": " .. tostring(p.kind) .. " has no embeddings endpoint"
  end
end

-- The cache key of one text's vector: everything that determines it.
local function cache_key(p, model, dims, text)
  return "po.llm.embed:1\n" .. tostring(p.kind) .. "\n" .. model .. "\n" .. tostring(dims or "default") .. "\n"
    .. text
end

local function fail(p, message, code, info)
  return nil, util.scrub(message, util.secrets(p)), code, info or {}
end

-- One request: texts → vectors and input tokens, or nil, message, code, info.
local function request(p, model, texts, dims)
  local a = p.adapter
  local url, headers, body = a.embed_request({ base_url = p.base_url, api_key = p.key(), options = p.options },
    texts, model, { dimensions = dims })
  if not url then
    return fail(p, headers, body or "EUNSUPPORTED")
  end
  for k, v in pairs(p.extra_headers or {}) do
    headers[k] = v
  end
  local chunks, received, too_big = {}, 0, false
  local fut, err, code = po.http.request {
    method = "POST", url = url, headers = headers, body = po.json.encode(body),
    timeout = p.timeout, connect_timeout = p.connect_timeout, ttfb_timeout = p.ttft_timeout,
    idle_timeout = p.idle_timeout,
    on_chunk = function(chunk)
      received = received + #chunk
      if received > (p.max_body or math.huge) then
        too_big = true
        error("max_body") -- stops the transfer
      end
      chunks[#chunks + 1] = chunk
    end,
  }
  if not fut then
    return fail(p, err, code)
  end
  local res
  res, err, code = fut:wait()
  local where = tostring(p.name) .. " " .. model
  if too_big then
    return fail(p, where .. ": the reply is longer than max_body (" .. p.max_body .. " bytes)", "ETOOBIG")
  end
  if not res then
    return fail(p, err, code, { transport = true })
  end
  local text = table.concat(chunks)
  local decoded, derr = po.json.decode(text)
  if res.status < 200 or res.status >= 300 then
    local message = a.error_message(decoded)
    message = message or (text ~= "" and text:sub(1, 200)) or "no body"
    local ecode = a.error_code and a.error_code(res.status, decoded, message) or "EHTTP"
    return fail(p, where .. ": HTTP " .. res.status .. ": " .. tostring(message), ecode,
      { status = res.status, retry_after = util.retry_after(res.headers["retry-after"]) })
  end
  if decoded == nil then
    return fail(p, where .. ": malformed JSON reply: " .. tostring(derr), "EJSON", { status = res.status })
  end
  if type(decoded) ~= "table" then
    return fail(p, where .. ": " .. util.bad_shape("the reply", "an object", decoded), "EPROTO")
  end
  local out, perr, pcode = a.embed_parse(decoded)
  if not out then
    return fail(p, where .. ": " .. tostring(perr), pcode or "EPROTO")
  end
  if type(out.vectors) ~= "table" or #out.vectors ~= #texts then
    return fail(p, where .. ": the reply holds " .. (type(out.vectors) == "table" and #out.vectors or 0)
      .. " vectors for " .. #texts .. " texts", "EPROTO")
  end
  for i, v in ipairs(out.vectors) do
    if type(v) ~= "table" or type(v[1]) ~= "number" then
      return fail(p, where .. ": vector " .. i .. " is not a list of numbers", "EPROTO")
    end
  end
  local u = type(out.usage) == "table" and out.usage or {}
  return out.vectors, util.is_count(u.input) and u.input or nil
end

--- Embeds texts (a string or a list of strings) with deployment (a
--- provider, a router deployment, or { provider = kind, model =, ... }).
--- opts: batch (texts per request, default 64), cache (a po.cache without a
--- semantic tier), ttl (of cached vectors), dimensions, model.
--- Returns { vectors = { ... } (in the texts' order), usage = { input = n
--- [, estimated = true] }, cost = n, cached = k (texts answered by the
--- cache), model = }, or nil, message, code, info: "EUNSUPPORTED" when
--- the provider's adapter has no embeddings, else the codes of a provider.
---@param deployment table
---@param texts string|string[]
---@param opts? { batch?: integer, cache?: table, ttl?: number, dimensions?: integer, model?: string }
function M.embed(deployment, texts, opts)
  local fname = "po.llm.embed"
  opts = check_opts(fname, opts, OPTIONS)
  local p, model = resolve(fname, deployment, opts)
  if type(texts) == "string" then
    texts = { texts }
  elseif type(texts) ~= "table" then
    error(fname .. ": texts must be a string or a list of strings, got " .. type(texts), 2)
  end
  for i, t in ipairs(texts) do
    if type(t) ~= "string" then
      error(fname .. ": texts[" .. i .. "] must be a string, got " .. type(t), 2)
    end
  end
  local no = unsupported(p)
  if no then
    return fail(p, no, "EUNSUPPORTED")
  end
  -- The provider's own `dimensions` option, when the call gives none.
  local dims, cache = opts.dimensions or (p.options and p.options.dimensions), opts.cache
  local vectors, cached = {}, 0
  local unique, slot = {}, {} -- texts to send, each once, and their place in unique
  for i, t in ipairs(texts) do
    local v = cache and cache:get(cache_key(p, model, dims, t))
    if type(v) == "table" and type(v[1]) == "number" then
      vectors[i], cached = v, cached + 1
    elseif not slot[t] then
      unique[#unique + 1] = t
      slot[t] = #unique
    end
  end
  local got, input, estimated = {}, 0, false
  local batch = opts.batch or M.BATCH
  for first = 1, #unique, batch do
    local part = {}
    for j = first, math.min(first + batch - 1, #unique) do
      part[#part + 1] = unique[j]
    end
    local vs, n, code, info = request(p, model, part, dims)
    if not vs then
      return nil, n, code, info
    end
    if not n then
      n, estimated = limits.estimate_text(table.concat(part, " ")), true
    end
    input = input + n
    for j, v in ipairs(vs) do
      got[first + j - 1] = v
      if cache then
        -- A vector that cannot be stored is only a later miss: the call
        -- has its answer either way.
        cache:set(cache_key(p, model, dims, part[j]), v, opts.ttl and { ttl = opts.ttl } or nil)
      end
    end
  end
  for i, t in ipairs(texts) do
    vectors[i] = vectors[i] or got[slot[t]]
  end
  return {
    vectors = vectors,
    usage = { input = input, estimated = estimated or nil },
    cost = (prices.cost(model, { input = input, output = 0 })),
    cached = cached,
    model = model,
  }
end

--- An embedder for the semantic cache: fn(text) → vector (raising on
--- failure, which the cache reports as EEMBED), and its id, provider kind
--- ":" model ":" dimensions ("default" when not given). Raises when the
--- provider has no embeddings. opts: dimensions, model, cache, ttl (as
--- for embed: a cache for the vectors themselves).
---@return fun(text: string): number[] fn
---@return string id
function M.embedder(deployment, opts)
  local fname = "po.llm.embedder"
  opts = check_opts(fname, opts, EMBEDDER_OPTIONS)
  local p, model = resolve(fname, deployment, opts)
  local no = unsupported(p)
  if no then
    error(fname .. ": " .. no .. " (EUNSUPPORTED)", 2)
  end
  local dims = opts.dimensions or (p.options and p.options.dimensions)
  local eopts = { model = model, dimensions = dims, cache = opts.cache, ttl = opts.ttl }
  local function fn(text)
    local out, err, code = M.embed(p, text, eopts)
    if not out then
      error(tostring(code) .. ": " .. tostring(err), 0)
    end
    return out.vectors[1]
  end
  return fn, tostring(p.kind) .. ":" .. model .. ":" .. tostring(dims or "default")
end

return M
