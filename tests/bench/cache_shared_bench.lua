-- The cache's shared tier (issue 17): a hit served from Redis — the local
-- tiers empty, so each c:get is a memory miss, one GET to a private
-- redis-server on 127.0.0.1 (TCP) and a fill of the memory tier — beside
-- redis-benchmark's own GET against the same server, one client and no
-- pipelining (-c 1 -P 1: one request waits for its reply before the next,
-- as a get does), with values of the same size. redis-benchmark's figure is
-- self-timed (its requests per second, without its start-up). A local
-- memory hit is the other reference: what the shared tier saves a process
-- once it holds the entry.
local po = require "poengine"
local lib = require "tests.bench.lib"
local redis_server = require "tests.tools.redis_server"

local N = 5000 -- gets per timed run (and requests per redis-benchmark run)
local KEYS = 2000 -- distinct keys, cycled: far more than the memory tier keeps

local server = redis_server.start_temp()
local ok, err = pcall(function()
  for _, size in ipairs { 1024, 16384 } do
    local value = ("v"):rep(size)
    local keys = {}
    for i = 1, KEYS do
      keys[i] = string.format("bench key %06d", i)
    end
    -- A writer puts every entry in Redis and closes (freeing its memory
    -- tier); the reader of the same namespace keeps at most 64 entries in
    -- memory (one shard), so cycling through 2,000 keys misses every time.
    local ns = "bench" .. size
    local writer = assert(po.cache.open { namespace = ns, shared = { redis = server.url } })
    for i = 1, KEYS do
      writer:set(keys[i], value, { ttl = 0 })
    end
    writer:close()
    local reader = assert(po.cache.open { namespace = ns, max_entries = 64, ttl = 0,
      shared = { redis = server.url } })
    -- redis-benchmark GETs "key:__rand_int__" (without -r, that very name):
    -- it must hold a value of the same size, or every GET answers nil.
    local client = assert(po.redis.connect(server.url))
    assert(client:command("SET", "key:__rand_int__", value):wait())
    client:close()
    local at = 0
    local function shared_hits()
      for _ = 1, N do
        at = at % KEYS + 1
        local v = reader:get(keys[at])
        if v == nil then
          error("a shared-tier miss for " .. keys[at])
        end
      end
    end
    local function redis_benchmark()
      local r = po.run_sync { argv = { "redis-benchmark", "-h", "127.0.0.1", "-p", tostring(server.port), "-t", "get",
        "-d", tostring(size), "-n", tostring(N), "-c", "1", "-P", "1", "-q" }, timeout = 120 }
      local rps = tonumber((r.stdout or ""):match("GET: ([%d.]+) requests per second"))
      assert(rps, "redis-benchmark said: " .. tostring(r.stdout) .. tostring(r.stderr))
      return N / rps
    end
    local kb = math.floor(size / 1024) .. " KB"
    lib.compare {
      name = "cache: shared tier (Redis)",
      case = "c:get(key) answered by Redis (local tiers empty: a memory miss, GET, fill), " .. kb
        .. " values, 127.0.0.1 TCP; vs redis-benchmark -t get -d " .. size .. " -c 1 -P 1",
      subject = { label = "po.cache shared hit", fn = shared_hits },
      baseline = { label = "redis-benchmark GET", fn = redis_benchmark },
      ops = N, unit = "us", runs = 7, goal = { max_ratio = 2 },
    }
    if size == 1024 then
      local local_cache = assert(po.cache.open { namespace = "local", shared = { redis = server.url } })
      local_cache:set("k", value)
      lib.compare {
        name = "cache: shared tier (Redis)",
        case = "c:get(key) answered by the memory tier (the entry already read from Redis), 1 KB; "
          .. "vs the same get answered by Redis",
        subject = { label = "po.cache memory hit", fn = function()
          for _ = 1, N do
            local_cache:get("k")
          end
        end },
        baseline = { label = "po.cache shared hit", fn = shared_hits },
        ops = N, unit = "us", runs = 7,
      }
      local_cache:close()
    end
    reader:close()
  end
end)
redis_server.stop_temp(server)
assert(ok, err)
