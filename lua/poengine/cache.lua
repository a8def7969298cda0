--- po.cache: the LLM response cache.
---
--- The table, the store and the key hashing are C (src/core/cache.c); this
--- module is the object scripts hold. `get` and `set` with string keys take
--- a LuaJIT FFI fast path straight into the same C functions (declared in
--- poengine._ffi); request tables (canonicalized in C), the semantic tier and
--- everything else go through the C API binding (src/bind/bind_cache.c).
local core = require "poengine_core"
local cffi = require "poengine._ffi"
local shared_tier = require "poengine.cache_shared"

local ccache = core.cache
local json_encode, json_decode = core.json.encode, core.json.decode
local type, error, setmetatable, pairs, ipairs, tostring, select = type, error, setmetatable, pairs, ipairs,
  tostring, select
local concat = table.concat
local unpack = unpack or table.unpack
local ffi, C = cffi.ffi, cffi.C
local ffi_string = ffi and ffi.string
local ENOENT = ccache.ENOENT

local M = {}

local JSON = 1 -- flags bit: the value is a table stored as JSON

---@class poengine.Cache
local Cache = {}
Cache.__index = Cache
Cache.__name = "poengine.cache"

local function closed(fn)
  error(fn .. ": the cache is closed", 3)
end

local TEXT_FIELDS = { "system", "prompt", "input" }

-- The text and parameters of a key for the semantic tier: a string is its
-- own text (parameters: "string"); a request's text is its message contents
-- (string contents, and the `text` of content parts), its parameters the
-- request without them, whose key the binding hashes into the group, so
-- only entries with identical parameters compare.
local function semantic_parts(key)
  if type(key) ~= "table" then
    return type(key) == "string" and key or "", "string" -- the binding raises on other keys
  end
  local texts, rest = {}, {}
  for k, v in pairs(key) do
    rest[k] = v
  end
  if type(key.messages) == "table" then
    local msgs = {}
    for i, m in ipairs(key.messages) do
      if type(m) == "table" then
        local copy = {}
        for k, v in pairs(m) do
          copy[k] = v
        end
        if type(m.content) == "string" then
          texts[#texts + 1] = m.content
          copy.content = nil
        elseif type(m.content) == "table" then
          local parts = {}
          for j, p in ipairs(m.content) do
            if type(p) == "table" and type(p.text) == "string" then
              texts[#texts + 1] = p.text
              local q = {}
              for k, v in pairs(p) do
                q[k] = v
              end
              q.text = nil
              parts[j] = q
            else
              parts[j] = p
            end
          end
          copy.content = parts
        end
        msgs[i] = copy
      else
        msgs[i] = m
      end
    end
    rest.messages = msgs
  end
  for _, field in ipairs(TEXT_FIELDS) do
    if type(key[field]) == "string" then
      texts[#texts + 1] = key[field]
      rest[field] = nil
    end
  end
  return concat(texts, "\n"), rest
end
M._semantic_parts = semantic_parts

local check_names = require("poengine.util.options").check
local SEMANTIC_OPTIONS = { threshold = true, embed = true, embed_id = true, candidates = true }

local function check_semantic(s)
  if type(s) ~= "table" then
    return nil -- nil or false; other types are refused by the binding
  end
  local fn = "po.cache.open"
  check_names(fn, s, SEMANTIC_OPTIONS, 3, nil, "semantic.")
  local threshold = s.threshold == nil and 0.95 or s.threshold
  if type(threshold) ~= "number" or threshold ~= threshold or threshold < -1 or threshold > 1 then
    error(fn .. ": semantic.threshold must be a number from -1 to 1, got " .. tostring(s.threshold), 3)
  end
  local embed = s.embed == nil and "ngram" or s.embed
  if embed ~= "ngram" and type(embed) ~= "function" then
    error(fn .. ": semantic.embed must be \"ngram\" or a function, got " .. tostring(s.embed), 3)
  end
  local id = s.embed_id
  if id ~= nil and (type(id) ~= "string" or id == "") then
    error(fn .. ": semantic.embed_id must be a non-empty string, got " .. tostring(id), 3)
  end
  if type(embed) == "function" then
    if id == nil then
      -- Without an id, the function's source position names it: the same
      -- script line gives the same id from run to run.
      local info = debug.getinfo(embed, "S")
      id = "lua:" .. info.short_src .. ":" .. info.linedefined
    end
  elseif id ~= nil then
    error(fn .. ": semantic.embed_id is only for a function embedder", 3)
  end
  local k = s.candidates == nil and 8 or s.candidates
  if type(k) ~= "number" or k < 1 or k > 64 or k % 1 ~= 0 then
    error(fn .. ": semantic.candidates must be an integer from 1 to 64, got " .. tostring(s.candidates), 3)
  end
  return { threshold = threshold, embed = embed, id = id, k = k }
end

--- Opens a cache. See docs/scripting.md for every option.
---@param opts table|nil
---@return poengine.Cache|nil cache
---@return string|nil message
---@return string|nil code
function M.open(opts)
  if opts ~= nil and type(opts) ~= "table" then
    error("po.cache.open: options must be a table, got " .. type(opts), 2)
  end
  local semantic = check_semantic(opts and opts.semantic)
  local shared = opts and opts.shared
  if shared ~= nil then
    shared_tier.check(shared)
  end
  local h, err, code = ccache.open(opts)
  if not h then
    return nil, err, code
  end
  local cfg = h:config()
  local cp, rp, sync = h:pointers()
  if shared ~= nil then
    shared = shared_tier.open(shared, cfg.namespace)
  end
  return setmetatable({
    _shared = shared or false,
    _h = h,
    _c = C and ffi.cast("po_cache *", cp) or false, -- false: no FFI; nil: closed
    _r = C and ffi.cast("po_cache_result *", rp),
    _ttl = cfg.ttl,
    _max_bytes = cfg.max_bytes or math.huge,
    _sync = sync,
    _semantic = semantic,
  }, Cache)
end

local function failure(fn, rc)
  local message, code = ccache.error_text(rc)
  return nil, fn .. ": " .. message, code
end

local function result(value, flags, age, hit, score)
  if flags % 2 == JSON then
    local v, err = json_decode(value)
    if v == nil then
      return nil, "cache:get: a stored table does not decode: " .. tostring(err), "EJSON"
    end
    value = v
  end
  return value, { hit = hit, score = score, age = age }
end

-- Embeds text with the cache's function embedder: a list of numbers, or
-- nil, message, code.
local function embed(sem, text)
  local ok, vec = pcall(sem.embed, text)
  if not ok then
    return nil, "cache: the embed function failed: " .. tostring(vec), "EEMBED"
  end
  if type(vec) ~= "table" or #vec == 0 then
    return nil, "cache: the embed function must return a non-empty list of numbers, got " .. type(vec), "EEMBED"
  end
  return vec
end

-- After an exact miss, the semantic lookup: one call into C, which hashes
-- the parameters into the group, embeds the text (unless a function
-- embedder did here), searches, and keeps the vector of a miss for the set
-- that follows.
local function semantic_get(self, sem, key)
  local text, params = semantic_parts(key)
  local vec
  if sem.embed ~= "ngram" then
    local err, code
    vec, err, code = embed(sem, text)
    if not vec then
      return nil, err, code
    end
  end
  local value, flags, age, score = self._h:semantic_get(key, params, sem.id, text, sem.threshold, sem.k, vec)
  if value == nil then
    return nil, flags, age
  end
  return result(value, flags, age, "semantic", score)
end

--- Looks a key up. A hit returns the value (a string, or the table that was
--- stored) and info = { hit = "exact" | "semantic", score = n, age = seconds };
--- a miss returns nil; a failure nil, message, code.
---@param key string|table
function Cache:get(key)
  local c = self._c
  if c == nil then
    closed("cache:get")
  end
  local value, flags, age
  if c and type(key) == "string" then
    local r = self._r
    local rc = C.po_cache_get(c, key, #key, r)
    if rc == 0 then
      value, flags, age = ffi_string(r.value, r.len), r.flags, r.age
    elseif rc ~= ENOENT then
      return failure("cache:get", rc)
    end
  else
    value, flags, age = self._h:get(key)
    if value == nil and flags ~= nil then
      return nil, flags, age
    end
  end
  if value == nil and self._shared then
    value, flags, age = shared_tier.get(self._shared, self._h, key)
  end
  if value ~= nil then
    return result(value, flags, age, "exact", 1)
  end
  local sem = self._semantic
  if not sem then
    return nil
  end
  return semantic_get(self, sem, key)
end

local function encode_value(value)
  local tv = type(value)
  if tv == "string" then
    return value, 0
  elseif tv == "table" then
    local ok, text = pcall(json_encode, value)
    if not ok then
      error("cache:set: value cannot be stored as JSON: " .. tostring(text), 3)
    end
    return text, JSON
  end
  error("cache:set: value must be a string or a JSON-able table, got " .. tv, 3)
end

local SET_OPTIONS = { ttl = true }

local function set_ttl(self, opts)
  if opts == nil then
    return self._ttl
  end
  if type(opts) ~= "table" then
    error("cache:set: options must be a table, got " .. type(opts), 3)
  end
  check_names("cache:set", opts, SET_OPTIONS, 3)
  local ttl = opts.ttl
  if ttl == nil then
    return self._ttl
  end
  if type(ttl) ~= "number" or not (ttl >= 0) or ttl == math.huge then
    error("cache:set: ttl must be a non-negative number of seconds, got " .. tostring(ttl), 3)
  end
  return ttl
end

local set_local

--- Stores value (a string, or a JSON-able table) under key. Returns true, or
--- nil, message, code.
---@param key string|table
---@param value string|table
---@param opts table|nil  { ttl = seconds }
function Cache:set(key, value, opts)
  local c = self._c
  if c == nil then
    closed("cache:set")
  end
  local text, flags = encode_value(value)
  local ttl = set_ttl(self, opts)
  local tier = self._shared
  if not tier then
    return set_local(self, c, key, text, flags, ttl)
  end
  local ok, err, code = set_local(self, c, key, text, flags, ttl)
  if ok then
    shared_tier.set(tier, self._h, key, text, flags, ttl)
  end
  return ok, err, code
end

-- Cache:set in the memory and LMDB tiers.
function set_local(self, c, key, text, flags, ttl)
  local sem = self._semantic
  if sem then
    -- The vector comes from the memo of the lookup that missed, else from
    -- the built-in embedder in C, else from the function embedder here.
    local h = self._h
    local stext, params = semantic_parts(key)
    local ok, err, code = h:set(key, text, flags, ttl, params, sem.id, stext)
    if ok then
      return ok
    elseif ok == nil then
      return nil, err, code
    end
    local vec
    vec, err, code = embed(sem, stext)
    if not vec then
      return nil, err, code
    end
    return h:set(key, text, flags, ttl, params, sem.id, stext, vec)
  end
  if c and type(key) == "string" and #key + #text <= self._max_bytes then
    local rc = C.po_cache_set(c, key, #key, text, #text, flags, ttl, self._sync)
    if rc == 0 then
      return true
    end
    return failure("cache:set", rc)
  end
  return self._h:set(key, text, flags, ttl)
end

--- Removes key: true if it was there, false if not, or nil, message, code.
function Cache:delete(key)
  if self._c == nil then
    closed("cache:delete")
  end
  local removed, err, code = self._h:delete(key)
  if self._shared and removed ~= nil then
    removed = shared_tier.delete(self._shared, key) or removed
  end
  return removed, err, code
end

--- Removes every entry of the cache's namespace (in the store too).
function Cache:clear()
  if self._c == nil then
    closed("cache:clear")
  end
  local ok, err, code = self._h:clear()
  if ok and self._shared then
    shared_tier.clear(self._shared)
  end
  return ok, err, code
end

--- Counters since the cache was opened in this process; see docs/scripting.md.
function Cache:stats()
  if self._c == nil then
    closed("cache:stats")
  end
  local st, err, code = self._h:stats()
  local tier = self._shared
  if st and tier then
    -- A shared hit was a local miss first: the cache as a whole answered it.
    local sh = shared_tier.stats(tier)
    st.shared = sh
    st.hits, st.misses = st.hits + sh.hits, st.misses - sh.hits
    st.hit_rate = st.total_requests > 0 and st.hits / st.total_requests or 0
    st.api_call_reduction = st.hit_rate * 100
  end
  return st, err, code
end

--- Removes entries from the cache's store: every expired one, those written
--- more than `older_than` seconds ago, then the oldest until the rest hold at
--- most `max_bytes` key + value bytes (this namespace, or with
--- `all_namespaces` the whole store). `dry_run` counts without removing.
--- Returns { removed, removed_bytes, expired, remaining, remaining_bytes,
--- transactions }, or nil, message, code.
---@param opts? table  { older_than?, max_bytes?, dry_run?, all_namespaces?, batch? }
function Cache:prune(opts)
  if self._c == nil then
    closed("cache:prune")
  end
  return self._h:prune(opts)
end

--- What the namespace holds in the store now: { entries, bytes, expired,
--- vectors, oldest, newest, map_size, map_used, map_free }, or nil,
--- message, code.
function Cache:contents()
  if self._c == nil then
    closed("cache:contents")
  end
  return self._h:contents()
end

--- Closes this handle (safe to call twice). Other handles of the same cache
--- stay open.
function Cache:close()
  if self._c == nil then
    return
  end
  self._c, self._r = nil, nil
  self._h:close()
  if self._shared then
    shared_tier.close(self._shared)
  end
end

--- The namespaces of the cache store in path (creating nothing), or nil,
--- message, code ("ENOENT" when no cache store is there).
---@param path string
---@return string[]|nil names, string? message, string? code
function M.namespaces(path)
  if type(path) ~= "string" then
    error("po.cache.namespaces: path must be a string, got " .. type(path), 2)
  end
  return ccache.namespaces(path)
end

--- The hex key a request (or string) is stored under.
---@param key string|table
---@return string
function M.key(key)
  return ccache.key(key)
end

local function pack(...)
  return { n = select("#", ...), ... }
end

--- Wraps fn so that it runs only on a miss: the key is the wrapper's
--- argument (its arguments, as a list, when there are several); a nil
--- result is not stored, and whatever fn returns comes back as it is.
---@param fn function
---@param cache poengine.Cache
---@param opts table|nil  { ttl = seconds }
---@return function
function M.cached(fn, cache, opts)
  if type(fn) ~= "function" then
    error("po.cache.cached: fn must be a function, got " .. type(fn), 2)
  end
  if getmetatable(cache) ~= Cache then
    error("po.cache.cached: cache must be a cache from po.cache.open, got " .. type(cache), 2)
  end
  set_ttl(cache, opts) -- checks the options now
  return function(...)
    local key = ...
    if select("#", ...) ~= 1 then
      key = { ... }
    end
    local value, info = cache:get(key)
    if value ~= nil then
      return value, info
    end
    local results = pack(fn(...))
    if results[1] ~= nil then
      cache:set(key, results[1], opts)
    end
    return unpack(results, 1, results.n)
  end
end

return M
