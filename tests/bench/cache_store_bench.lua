-- The cache's store (issue benchmark 3): opening a store of 1,000,000
-- entries (built once into build-bench/, kept between runs) beside the
-- Python reference design loading its JSON file of 100,000 entries; set
-- throughput per sync mode beside the Python reference's in-memory set plus
-- one JSON save of the same entries; get served from LMDB (a cold memory
-- tier) beside a memory-tier hit of the same keys.
local po = require "poengine"
local lib = require "tests.bench.lib"

local work = "build-bench/cache-store-bench"
os.execute("mkdir -p " .. work)
local function sh_ok(cmd)
  local r = os.execute(cmd)
  return r == 0 or r == true
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

-- 1. Open time at 1,000,000 entries.
local big = work .. "/store-1m"
local ENTRIES = 1000000
if not io.open(big .. "/complete") then
  io.stderr:write("cache_store_bench: building a store of 1,000,000 entries in ", big, " (once)\n")
  os.execute("rm -rf " .. big)
  local c = assert(po.cache.open { path = big, max_entries = 2 * ENTRIES, sync = "none", ttl = 0 })
  local filler = ("x"):rep(64)
  for i = 1, ENTRIES do
    assert(c:set("prompt number " .. i .. " about some topic", "answer " .. i .. " " .. filler))
  end
  c:close()
  io.open(big .. "/complete", "w"):close()
end
local json_file = work .. "/ref-100k.json"
if not io.open(json_file) then
  assert(py("save " .. json_file .. " 100000") == "100000")
end

lib.compare {
  name = "cache: store",
  case = "open a store of 1,000,000 entries (and close it); vs the Python reference loading its JSON file of 100,000",
  subject = { label = "po.cache.open", fn = function()
    for _ = 1, 10 do
      local c = assert(po.cache.open { path = big })
      assert(c:stats().size == ENTRIES)
      c:close()
    end
  end },
  baseline = { label = "llmcache_ref.py json.load", fn = function()
    assert(py("load " .. json_file) == "100000")
  end },
  ops = 10, unit = "ms", runs = 5,
  goal = { max_time = 10 },
}

-- 2. set throughput per sync mode.
local N = 2000
local value = ("answer text "):rep(10)
for _, sync in ipairs { "full", "batch", "none" } do
  local dir = work .. "/sets-" .. sync
  os.execute("rm -rf " .. dir)
  local c = assert(po.cache.open { path = dir, sync = sync, max_entries = 1000000 })
  local round = 0
  lib.compare {
    name = "cache: store",
    case = ("c:set(key, value), sync = %q, ~100 B values; vs the Python reference's set plus one JSON save"):format(sync),
    subject = { label = "po.cache (LMDB)", fn = function()
      round = round + 1
      for i = 1, N do
        assert(c:set(("r%d-k%d"):format(round, i), value))
      end
    end },
    baseline = { label = "llmcache_ref.py", fn = function()
      assert(py("sets " .. N) == tostring(N))
      assert(py("save " .. work .. "/sets.json " .. N) == tostring(N))
    end },
    ops = N, unit = "us", runs = 5,
  }
  c:close()
  os.execute("rm -rf " .. dir)
end
py_in:close()
py_out:close()
os.remove(fifo)

-- 3. get served from LMDB: each run reopens the store, so every get misses
-- the memory tier and reads LMDB; the baseline gets the same keys from a warm
-- memory tier.
local G = 10000
local keys = {}
for i = 1, G do
  keys[i] = "prompt number " .. (i * 97 % ENTRIES + 1) .. " about some topic"
end
local warm = assert(po.cache.open { namespace = "bench-warm", max_entries = 2 * G })
for i = 1, G do
  warm:set(keys[i], "answer")
end
lib.compare {
  name = "cache: store",
  case = "c:get(key) served from LMDB (store of 1,000,000, cold memory tier); vs a memory-tier hit",
  subject = { label = "po.cache (LMDB read)", fn = function()
    local c = assert(po.cache.open { path = big })
    for i = 1, G do
      assert(c:get(keys[i]))
    end
    c:close()
  end },
  baseline = { label = "po.cache (memory hit)", fn = function()
    for i = 1, G do
      assert(warm:get(keys[i]))
    end
  end },
  ops = G, unit = "us", runs = 5,
}
warm:close()
