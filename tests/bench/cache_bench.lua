-- The cache's exact tier (issue benchmarks 1 and 2):
--   1. c:get(request) over 10,000 distinct ~1 KB requests, Zipf(0.99) and
--      uniform, beside the Python reference design (baselines/llmcache_ref.py)
--      and beside lua-resty-lrucache keyed by po.json.encode(request, {sort_keys}).
--   2. c:get(key) with prebuilt 1 KB string keys beside XXH3 of the key alone
--      (libxxhash through the FFI, the 64-bit variant: see below) and beside
--      lua-resty-lrucache; set
--      throughput beside lua-resty-lrucache.
-- lua-resty-lrucache is fetched with `apt-get download` and unpacked with
-- `dpkg -x` into build-bench/ (never installed: it would remove
-- libluajit-5.1-dev).
local po = require "poengine"
local lib = require "tests.bench.lib"
local ffi = require "ffi"

local work = "build-bench/cache-bench"
os.execute("mkdir -p " .. work)

local function sh_ok(cmd)
  local r = os.execute(cmd)
  return r == 0 or r == true
end

-- lua-resty-lrucache, unpacked from its Debian package.
local lru_dir = work .. "/lrucache/usr/share/lua/5.1"
if not io.open(lru_dir .. "/resty/lrucache.lua") then
  assert(sh_ok("cd " .. work .. " && apt-get download lua-resty-lrucache >/dev/null 2>&1 && "
    .. "dpkg -x lua-resty-lrucache_*.deb lrucache"), "cannot fetch lua-resty-lrucache with apt-get download")
end
package.path = lru_dir .. "/?.lua;" .. package.path
-- Outside OpenResty it needs only ngx.now (for its TTLs).
rawset(_G, "ngx", rawget(_G, "ngx") or { now = po.time })
local lrucache = require "resty.lrucache"

-- XXH3 alone, from the same libxxhash the cache links: the 64-bit variant,
-- because LuaJIT cannot compile a call that returns XXH3-128's struct by value
-- (it would run interpreted and flatter the cache); over 1 KB both run the
-- same accumulation loop, the 128-bit one a little slower.
pcall(ffi.cdef, [[
  uint64_t XXH3_64bits(const void *data, size_t len);
]])
local xxh = ffi.load("xxhash")

-- Deterministic data.
math.randomseed(12345)
local words = {}
for w in ([[the of and to in is that for it as with was on be by this are from at or an have not
  function return value list string number error cache request model token prompt answer code test
  build deploy server client query index vector merge sort search parse format write read]]):gmatch("%S+") do
  words[#words + 1] = w
end
local function text(n, salt)
  local out, len = {}, 0
  while len < n do
    local w = words[math.random(#words)]
    out[#out + 1] = w
    len = len + #w + 1
  end
  out[#out + 1] = salt
  return table.concat(out, " ")
end

local N = 10000
local requests = {}
for i = 1, N do
  requests[i] = {
    model = "gpt-4o-mini",
    temperature = 0,
    max_tokens = 256,
    top_p = 1,
    messages = {
      { role = "system", content = text(200, "s" .. i) },
      { role = "user", content = text(800, "u" .. i) },
    },
  }
end

local function zipf_sequence(n, s, count)
  local cdf, total = {}, 0
  for k = 1, n do
    total = total + 1 / k ^ s
    cdf[k] = total
  end
  local perm = {}
  for i = 1, n do
    perm[i] = i
  end
  for i = n, 2, -1 do
    local j = math.random(i)
    perm[i], perm[j] = perm[j], perm[i]
  end
  local seq = {}
  for i = 1, count do
    local u = math.random() * total
    local lo, hi = 1, n
    while lo < hi do
      local mid = math.floor((lo + hi) / 2)
      if cdf[mid] < u then lo = mid + 1 else hi = mid end
    end
    seq[i] = perm[lo]
  end
  return seq
end
local sequences = { zipf = zipf_sequence(N, 0.99, N), uniform = {} }
for i = 1, N do
  sequences.uniform[i] = math.random(N)
end

-- The Python reference, as a server reading commands from a FIFO.
local fifo = work .. "/py.fifo"
os.remove(fifo)
assert(sh_ok("mkfifo " .. fifo))
local py_out = assert(io.popen("python3 tests/bench/baselines/llmcache_ref.py < " .. fifo))
local py_in = assert(io.open(fifo, "w"))
local function py(cmd)
  py_in:write(cmd, "\n")
  py_in:flush()
  return assert(py_out:read("*l"), "the Python reference stopped")
end
local req_file = work .. "/requests.jsonl"
do
  local f = assert(io.open(req_file, "w"))
  for i = 1, N do
    f:write(po.json.encode(requests[i]), "\n")
  end
  f:close()
end
assert(py("load_requests " .. req_file) == tostring(N))
assert(py("fill") == tostring(N))

local cache = assert(po.cache.open { namespace = "bench-requests", max_entries = 2 * N })
local lru = assert(lrucache.new(2 * N))
local encode, SORTED = po.json.encode, { sort_keys = true }
for i = 1, N do
  cache:set(requests[i], tostring(i))
  lru:set(encode(requests[i], SORTED), tostring(i))
end

for _, dist in ipairs { "zipf", "uniform" } do
  local seq = sequences[dist]
  local seq_file = work .. "/seq-" .. dist .. ".json"
  local f = assert(io.open(seq_file, "w"))
  local zero = {}
  for i = 1, #seq do
    zero[i] = seq[i] - 1
  end
  f:write(po.json.encode(zero))
  f:close()
  assert(py("load_sequence " .. seq_file) == tostring(#seq))
  local function ours()
    local hits = 0
    for i = 1, #seq do
      if cache:get(requests[seq[i]]) then hits = hits + 1 end
    end
    assert(hits == #seq)
  end
  lib.compare {
    name = "cache: exact hit by request",
    case = ("c:get(request), 10,000 requests of ~1 KB, %s; vs the Python reference"):format(dist),
    subject = { label = "po.cache", fn = ours },
    baseline = { label = "llmcache_ref.py", fn = function() assert(py("gets") == tostring(#seq)) end },
    ops = #seq, unit = "us", runs = 5,
    goal = { min_speedup = 50 },
  }
  lib.compare {
    name = "cache: exact hit by request",
    case = ("c:get(request), 10,000 requests of ~1 KB, %s; vs lua-resty-lrucache keyed by sorted po.json.encode"):format(dist),
    subject = { label = "po.cache", fn = ours },
    baseline = { label = "resty.lrucache", fn = function()
      local hits = 0
      for i = 1, #seq do
        if lru:get(encode(requests[seq[i]], SORTED)) then hits = hits + 1 end
      end
      assert(hits == #seq)
    end },
    ops = #seq, unit = "us", runs = 5,
    goal = { min_speedup = 2 },
  }
end
py_in:close()
py_out:close()
os.remove(fifo)

-- 2. Prebuilt 1 KB string keys.
local keys, values = {}, {}
for i = 1, N do
  local k = text(1100, "k" .. i)
  keys[i] = k:sub(1, 1024 - #tostring(i)) .. i
  assert(#keys[i] == 1024)
  values[i] = text(100, "v" .. i)
end
local skeys = po.cache.open { namespace = "bench-strings", max_entries = 2 * N }
local slru = lrucache.new(2 * N)
for i = 1, N do
  skeys:set(keys[i], values[i])
  slru:set(keys[i], values[i])
end
local seq = sequences.uniform
local function ours_get()
  for i = 1, #seq do
    local v = skeys:get(keys[seq[i]])
    if not v then error("miss") end
  end
end

lib.compare {
  name = "cache: exact hit by string key",
  case = "c:get(key), prebuilt 1 KB keys, uniform; vs XXH3 of the key alone",
  subject = { label = "po.cache", fn = ours_get },
  baseline = { label = "XXH3_64bits (FFI)", fn = function()
    local x = 0ULL
    for i = 1, #seq do
      local k = keys[seq[i]]
      x = x + xxh.XXH3_64bits(k, #k)
    end
    return x
  end },
  ops = #seq, unit = "us", runs = 9,
  goal = { max_ratio = 3 },
}
lib.compare {
  name = "cache: exact hit by string key",
  case = "c:get(key), prebuilt 1 KB keys, uniform; vs lua-resty-lrucache (no persistence, one thread)",
  subject = { label = "po.cache", fn = ours_get },
  baseline = { label = "resty.lrucache", fn = function()
    for i = 1, #seq do
      if not slru:get(keys[seq[i]]) then error("miss") end
    end
  end },
  ops = #seq, unit = "us", runs = 9,
}
lib.compare {
  name = "cache: set by string key",
  case = "c:set(key, value), 1 KB keys, ~100 B values, memory only; vs lua-resty-lrucache",
  subject = { label = "po.cache", fn = function()
    for i = 1, N do
      skeys:set(keys[i], values[i])
    end
  end },
  baseline = { label = "resty.lrucache", fn = function()
    for i = 1, N do
      slru:set(keys[i], values[i])
    end
  end },
  ops = N, unit = "us", runs = 7,
}
skeys:close()
cache:close()
