--- The Redis scripts of a router's shared limits (poengine.llm.router_shared).
--- Each runs atomically on the server, so engines on many machines see one
--- budget, one window per deployment and one cooldown per deployment. Times
--- are the server's clock (TIME), in milliseconds, so the engines' clocks
--- never need to agree. Numbers go back as strings: Redis truncates a Lua
--- number in a reply to an integer.
local M = {}

-- The budget: KEYS[1] a hash of the totals (spent_usd, spent_tokens,
-- res_usd, res_tokens, res_n: what the reservations hold), KEYS[2] a
-- sorted set of the reservations by expiry, KEYS[3] a hash of what each
-- holds ("usd tokens"), KEYS[4] a hash of the reservations that expired
-- (charged their worst case), kept a day for a late settle to correct.
-- Before anything, the reservations past their expiry are charged their
-- worst case: the engine that made one may have crashed after sending.
local BUDGET_PROLOGUE = [[
local function fmt(x) return string.format('%.17g', x) end
local function pair(v)
  local u, k = string.match(v, '^(%S+) (%S+)$')
  return tonumber(u), tonumber(k)
end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local s = redis.call('HMGET', KEYS[1], 'spent_usd', 'spent_tokens', 'res_usd', 'res_tokens', 'res_n')
local su, st = tonumber(s[1]) or 0, tonumber(s[2]) or 0
local ru, rt, rn = tonumber(s[3]) or 0, tonumber(s[4]) or 0, tonumber(s[5]) or 0
local gone = redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', now, 'LIMIT', 0, 100)
for _, id in ipairs(gone) do
  local v = redis.call('HGET', KEYS[3], id)
  if v then
    local u, k = pair(v)
    su, st, ru, rt, rn = su + u, st + k, ru - u, rt - k, rn - 1
    redis.call('HSET', KEYS[4], id, v)
    redis.call('HDEL', KEYS[3], id)
  end
  redis.call('ZREM', KEYS[2], id)
end
if #gone > 0 then
  redis.call('PEXPIRE', KEYS[4], 86400000)
end
local function finish(ok)
  if rn <= 0 then
    ru, rt, rn = 0, 0, 0 -- no rounding left over
  end
  redis.call('HSET', KEYS[1], 'spent_usd', fmt(su), 'spent_tokens', fmt(st), 'res_usd', fmt(ru),
    'res_tokens', fmt(rt), 'res_n', rn)
  return { ok, fmt(su), fmt(st), fmt(ru), fmt(rt), rn, #gone }
end
]]

--- Reserves ARGV[2] dollars and ARGV[3] tokens under id ARGV[1] when they
--- fit beside what is spent and reserved under the caps ARGV[4] (usd) and
--- ARGV[5] (tokens), "" for none; the reservation expires ARGV[6] ms from
--- now. Returns { 1 | 0, spent_usd, spent_tokens, res_usd, res_tokens,
--- res_n, expired }.
M.RESERVE = BUDGET_PROLOGUE .. [[
local usd, tok = tonumber(ARGV[2]), tonumber(ARGV[3])
local cu, ct = tonumber(ARGV[4]), tonumber(ARGV[5])
if (cu and su + ru + usd > cu) or (ct and st + rt + tok > ct) then
  return finish(0)
end
ru, rt, rn = ru + usd, rt + tok, rn + 1
redis.call('ZADD', KEYS[2], now + tonumber(ARGV[6]), ARGV[1])
redis.call('HSET', KEYS[3], ARGV[1], fmt(usd) .. ' ' .. fmt(tok))
return finish(1)
]]

--- Replaces reservation ARGV[1] by the real cost, ARGV[2] dollars and
--- ARGV[3] tokens. A reservation that expired (and was charged its worst
--- case) is corrected to the real cost; one Redis never held (a call made
--- on local limits while Redis was away, or a server that lost its data)
--- is charged the real cost. Returns what RESERVE returns, with 1.
M.SETTLE = BUDGET_PROLOGUE .. [[
local usd, tok = tonumber(ARGV[2]), tonumber(ARGV[3])
local v = redis.call('HGET', KEYS[3], ARGV[1])
if v then
  local u, k = pair(v)
  ru, rt, rn = ru - u, rt - k, rn - 1
  redis.call('HDEL', KEYS[3], ARGV[1])
  redis.call('ZREM', KEYS[2], ARGV[1])
else
  local e = redis.call('HGET', KEYS[4], ARGV[1])
  if e then
    local u, k = pair(e)
    usd, tok = usd - u, tok - k
    redis.call('HDEL', KEYS[4], ARGV[1])
  end
end
su, st = su + usd, st + tok
return finish(1)
]]

-- The windows of one deployment: KEYS[1] a sorted set of the calls'
-- starts (rpm), KEYS[2] one of the calls' token entries (tpm) and KEYS[3]
-- a hash of their tokens, all by id, with their sum in its field "sum"
-- (so no call adds up the whole window); each expires a window after its
-- last write.
local NOW = [[
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
]]

--- Takes a place for call ARGV[1] in the rpm (ARGV[2], "" for none) and
--- tpm (ARGV[3]) windows of ARGV[5] ms, with ARGV[4] estimated tokens, when
--- there is room: returns { 1 }; else { 0, ms to wait, "rpm" | "tpm" }
--- (until the oldest start or spend leaves the window), taking nothing.
M.WINDOW = NOW .. [[
local rpm, tpm, est, window = tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4]), tonumber(ARGV[5])
local cut = now - window
local function oldest(key)
  local first = redis.call('ZRANGE', key, 0, 0, 'WITHSCORES')
  return math.max(1, tonumber(first[2]) + window - now)
end
if rpm then
  redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', cut)
  if redis.call('ZCARD', KEYS[1]) >= rpm then
    return { 0, oldest(KEYS[1]), 'rpm' }
  end
end
local sum = 0
if tpm then
  sum = tonumber(redis.call('HGET', KEYS[3], 'sum')) or 0
  local old = redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', cut, 'LIMIT', 0, 1000)
  if #old > 0 then
    for _, v in ipairs(redis.call('HMGET', KEYS[3], unpack(old))) do
      sum = sum - (tonumber(v) or 0)
    end
    redis.call('ZREM', KEYS[2], unpack(old))
    redis.call('HDEL', KEYS[3], unpack(old))
  end
  if redis.call('ZCARD', KEYS[2]) == 0 then
    sum = 0 -- no rounding left over
  elseif sum + est > tpm then
    redis.call('HSET', KEYS[3], 'sum', sum)
    return { 0, oldest(KEYS[2]), 'tpm' }
  end
end
if rpm then
  redis.call('ZADD', KEYS[1], now, ARGV[1])
  redis.call('PEXPIRE', KEYS[1], window)
end
if tpm then
  redis.call('ZADD', KEYS[2], now, ARGV[1])
  redis.call('HSET', KEYS[3], ARGV[1], est, 'sum', sum + est)
  redis.call('PEXPIRE', KEYS[2], window)
  redis.call('PEXPIRE', KEYS[3], window)
end
return { 1 }
]]

--- Corrects call ARGV[1]'s tokens in the tpm window to ARGV[2], the real
--- count, while it is still in the window.
M.TOKENS = [[
local was = redis.call('HGET', KEYS[2], ARGV[1])
if was and redis.call('ZSCORE', KEYS[1], ARGV[1]) then
  redis.call('HSET', KEYS[2], ARGV[1], ARGV[2])
  redis.call('HINCRBY', KEYS[2], 'sum', tonumber(ARGV[2]) - tonumber(was))
end
return 1
]]

--- Cools deployment key KEYS[1] down for ARGV[1] ms, with the error that
--- sent it there (ARGV[2]); a longer cooldown already there stays.
M.COOL = [[
if redis.call('PTTL', KEYS[1]) < tonumber(ARGV[1]) then
  redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[1])
end
return 1
]]

--- For each cooldown key: ms left (<= 0: none) and its error.
M.COOLDOWNS = [[
local out = {}
for _, k in ipairs(KEYS) do
  local left = redis.call('PTTL', k)
  out[#out + 1] = left
  out[#out + 1] = left > 0 and redis.call('GET', k) or ''
end
return out
]]

return M
