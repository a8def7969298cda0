--- The router's use of the response cache (poengine.llm.router): what a
--- call's opts.cache asks for, the key an answer is stored under (the
--- request, the provider kind and the model actually called), the lookup
--- over the deployments, and an answer served from the cache (streamed
--- answers replayed chunk by chunk).
local po = require "poengine"
local util = require "poengine.llm.util"
local rstats = require "poengine.llm.router_stats"

local now = po.now
local type, pairs, ipairs, tostring, error = type, pairs, ipairs, tostring, error

local M = {}

--- Whether a call may be answered from the cache, whether it is stored,
--- and the ttl, from opts.cache; raises on a bad value.
function M.mode(fname, mode)
  if mode == nil or mode == "default" then
    return true, true, nil
  elseif mode == "no-cache" then
    return false, true, nil -- fetch fresh, store the result
  elseif mode == "no-store" then
    return true, false, nil -- may answer from the cache, never stores
  elseif type(mode) == "table" then
    if type(mode.ttl) ~= "number" or mode.ttl < 0 then
      error(fname .. ": opts.cache.ttl must be a non-negative number of seconds", 3)
    end
    return true, true, mode.ttl
  end
  error(fname .. ": opts.cache must be \"default\", \"no-cache\", \"no-store\" or { ttl = n }", 3)
end

-- The version of the cache keys below. Keys of older versions (the bare
-- request) are never looked up again: their entries simply miss.
local KEY_VERSION = 2

-- The cache key: the request as the caller wrote it, without what does not
-- change the answer (stream, metadata), and with what the deployment
-- changes in it (its model, its max_tokens) and its provider kind, unless
-- the router's cache_scope is "request". Flat, so that the cache's semantic
-- tier still finds the prompt's text; the extra fields are among the
-- parameters it groups entries by.
function M.key(self, request, d)
  local key = {}
  for k, v in pairs(request) do
    if k ~= "stream" and k ~= "metadata" then
      key[k] = v
    end
  end
  key.llm_key = KEY_VERSION
  if self.cache_scope == "model" then
    key.provider = d.kind
    key.model = d.model or d.provider.model or request.model
    key.max_tokens = request.max_tokens or d.max_tokens
  end
  return key
end

M.STORED = { "text", "finish_reason", "tool_calls", "reasoning", "usage", "cost", "provider", "model", "latency",
  "chunks" }

--- A cached answer as a fresh one would be: json decoded again when the
--- request asked for a format (a stored answer was JSON when it was stored).
function M.finish(res, req)
  if req.response_format then
    res.json = po.json.decode(res.text)
  end
  return res
end

function M.from_cache(self, info_opts, on_token, t0, value, info)
  local c = self.counts
  c.hits = c.hits + 1
  local res = {}
  for _, k in ipairs(M.STORED) do
    res[k] = value[k]
  end
  res.chunks = nil
  res.usage = res.usage or { input = 0, output = 0, cached_read = 0, cache_write = 0, reasoning = 0 }
  local saved_tokens = (res.usage.input or 0) + (res.usage.output or 0)
  local saved_cost = res.cost or 0
  c.tokens_saved = c.tokens_saved + saved_tokens
  c.cost_saved = c.cost_saved + saved_cost
  res.cost = 0
  res.cached = info.hit
  res.latency = now() - t0
  res.ttft = res.latency
  if on_token then
    util.replay_chunks(on_token, res.text, value.chunks, self.replay_pace)
  end
  rstats.record_call(info_opts, { cache_hit = true, tokens_in = res.usage.input, tokens_out = res.usage.output,
    cost = saved_cost, latency = res.latency, provider = res.provider })
  return res
end

-- Looks the request up under each deployment's key, in order (one key for
-- all with cache_scope "request"); returns the first hit's value and info,
-- or on a miss nil, nil and the first deployment's key (to store under).
function M.lookup(self, request, list)
  local cache = self.cache
  local first = self:_cache_key(request, list[1])
  if self.cache_scope == "request" or #list == 1 then
    local value, info = cache:get(first)
    if type(value) == "table" and type(info) == "table" then
      return value, info
    end
    return nil, nil, first
  end
  local seen = {}
  for i, d in ipairs(list) do
    local key = i == 1 and first or self:_cache_key(request, d)
    local id = d.kind .. "\0" .. tostring(key.model)
    if not seen[id] then
      seen[id] = true
      local value, info = cache:get(key)
      if type(value) == "table" and type(info) == "table" then
        return value, info
      end
    end
  end
  return nil, nil, first
end

return M
