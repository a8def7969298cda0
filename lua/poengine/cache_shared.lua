--- The cache's shared tier: entries in Redis, behind the memory and LMDB
--- tiers, so that engines on other machines answer from one another's
--- calls (po.cache.open{ shared = { redis = url } }; docs/scripting.md).
---
--- An entry is one Redis string under
---   prefix .. "cache:v" .. key form version .. ":" .. namespace .. ":" .. key hash
--- whose value is the store's own record (header with flags, write time and
--- expiry, the full key, the value: src/core/cache_record.h), so a hit
--- compares the full key as the store does and comes back with the same
--- value, flags and age as a local hit; Redis expires it with the entry.
---
--- Redis is an optional tier (poengine.redis_optional): a failure is
--- counted and leaves the caller on the local tiers.
local core = require "poengine_core"
local optional = require "poengine.redis_optional"

local type, tostring, error, ipairs, ceil, unpack = type, tostring, error, ipairs, math.ceil, unpack or table.unpack

local M = {}

local check_names = require("poengine.util.options").check
local OPTIONS = { redis = "string", prefix = "string", timeout = "number", retry = "number" }

-- Escapes the glob characters of SCAN's MATCH.
local function glob_literal(s)
  return (s:gsub("[%*%?%[%]\\]", "\\%0"))
end

--- Checks the `shared` option of po.cache.open; raises (at the caller of
--- po.cache.open) on a malformed one.
---@param s table  { redis = url, prefix? = "poengine:", timeout? = 1, retry? = 1 }
function M.check(s)
  local fn = "po.cache.open"
  if type(s) ~= "table" then
    error(fn .. ": shared must be a table, got " .. type(s), 3)
  end
  check_names(fn, s, OPTIONS, 3, nil, "shared.")
  if not s.redis then
    error(fn .. ": shared.redis (a redis:// or unix:// URL) is required", 3)
  end
  for _, name in ipairs { "timeout", "retry" } do
    local v = s[name]
    if v ~= nil and not (v > 0 and v < math.huge) then
      error(fn .. ": shared." .. name .. " must be a positive number of seconds, got " .. tostring(v), 3)
    end
  end
end

--- Connects the tier of a checked `shared` option. A server that cannot be
--- reached is no error: the tier starts as failing and reconnects by itself.
---@param namespace string
---@return table tier
function M.open(s, namespace)
  local prefix = (s.prefix or "poengine:") .. "cache:v" .. core.cache.KEY_VERSION .. ":" .. namespace .. ":"
  return {
    conn = optional.open(s.redis, { timeout = s.timeout or 1, retry = s.retry or 1,
      what = "cache: the shared tier", fn = "po.cache.open: shared.redis", level = 3 }),
    prefix = prefix,
    pattern = glob_literal(prefix) .. ("?"):rep(32),
    stats = { hits = 0, misses = 0, sets = 0, deletes = 0 },
  }
end

local function call(tier, ...)
  return tier.conn:call(...)
end

--- After a local miss: value, flags, age from Redis (the local tiers filled
--- with the entry, its write time and expiry), or nil.
---@param h userdata  the cache binding's handle
function M.get(tier, h, key)
  local reply, ok = call(tier, "GET", tier.prefix .. core.cache.key(key))
  if not ok then
    return nil
  end
  local st = tier.stats
  local value, flags, age
  if reply ~= nil then
    value, flags, age = h:shared_fill(key, reply)
  end
  if value == nil then
    st.misses = st.misses + 1
    return nil
  end
  st.hits = st.hits + 1
  return value, flags, age
end

--- Writes an entry through to Redis, expiring with it: true, or false when
--- the tier is failing (the local set stands).
function M.set(tier, h, key, text, flags, ttl)
  local hex, record = h:shared_record(key, text, flags, ttl)
  if not hex then
    return false
  end
  ttl = ttl or h:config().ttl
  local rkey = tier.prefix .. hex
  local _, ok
  if ttl <= 0 or ttl >= 2 ^ 40 then -- none, or beyond any expiry that matters (35,000 years)
    _, ok = call(tier, "SET", rkey, record)
  elseif ttl % 1 == 0 then
    _, ok = call(tier, "SET", rkey, record, "EX", string.format("%d", ttl))
  else
    _, ok = call(tier, "SET", rkey, record, "PX", string.format("%d", ceil(ttl * 1000)))
  end
  if ok then
    tier.stats.sets = tier.stats.sets + 1
  end
  return ok
end

--- Removes key from Redis: true if it was there.
function M.delete(tier, key)
  local n, ok = call(tier, "DEL", tier.prefix .. core.cache.key(key))
  if ok and n and n > 0 then
    tier.stats.deletes = tier.stats.deletes + 1
    return true
  end
  return false
end

--- Removes every entry of this cache's prefix and namespace from Redis
--- (SCAN with a pattern that matches only its keys, then DEL in batches;
--- never FLUSHDB): true, or false when the tier failed on the way.
function M.clear(tier)
  local cursor = "0"
  repeat
    local reply, ok = call(tier, "SCAN", cursor, "MATCH", tier.pattern, "COUNT", 1000)
    if not ok then
      return false
    end
    cursor = reply[1]
    local keys = reply[2]
    if keys.n > 0 then
      local _, deleted = call(tier, "DEL", unpack(keys, 1, keys.n))
      if not deleted then
        return false
      end
    end
  until cursor == "0"
  return true
end

--- The tier's counters (a fresh table): hits, misses, sets, deletes,
--- failures, skipped, and connected (a boolean).
function M.stats(tier)
  local st, conn = tier.stats, tier.conn
  return {
    hits = st.hits,
    misses = st.misses,
    sets = st.sets,
    deletes = st.deletes,
    failures = conn.failures,
    skipped = conn.skipped,
    connected = conn:connected(),
  }
end

function M.close(tier)
  tier.conn:close()
end

return M
