--- The soak (run by scripts/soak): optimizer runs of a few short cycles each,
--- round after round until the time is up, against the test LLM server with
--- a fault injected in every round, sharing one router and one on-disk cache.
---
--- Each round: the first deployment answers with a fault (429, 500, 503, a
--- cut body, a reset, malformed JSON, a stall), the router retries or falls
--- back to the second; one candidate's tests validator kills itself
--- (SIGKILL) in every third round; a cache entry the next round will read is
--- overwritten with a damaged value every fifth round. After each round the
--- process's RSS, open descriptors and Lua heap are sampled.
---
--- Fails (exit 1) when a round raised or stopped early, a cycle or a
--- candidate is missing from the collector or the event log, or memory,
--- descriptors or heap grew between the first and the last quarter of the
--- rounds. Prints one summary line per figure.
local po = require "poengine"
local events = require "tests.tools.events"
local proc = require "tests.tools.proc"
local procstat = require "tests.tools.procstat"
local llm_server = require "tests.tools.llm_server"

local minutes = 2
for i = 1, #arg do
  if arg[i] == "--minutes" then
    minutes = assert(tonumber(arg[i + 1]), "--minutes takes a number")
  end
end

local CYCLES, CANDIDATES = 3, 2
local FAULTS = {
  "fault=429;retry_after=0", "fault=status;status=500", "fault=status;status=503", "fault=truncated",
  "fault=reset", "fault=malformed", "fault=stall;stall=3",
}

local function write(path, text)
  local f = assert(io.open(path, "wb"))
  f:write(text)
  f:close()
end


-- The cache the router uses, through a wrapper that remembers the keys it
-- stored, so that a round can damage one the next round reads.
local function remembering(cache)
  local keys = {}
  return setmetatable({
    get = function(_, key) return cache:get(key) end,
    set = function(_, key, value, opts)
      keys[#keys + 1] = key
      return cache:set(key, value, opts)
    end,
    damage = function()
      local key = keys[#keys]
      if key then
        assert(cache:set(key, "damaged: not a reply"))
      end
      return key ~= nil
    end,
    forget = function() keys = {} end,
  }, { __index = function(_, k) return function(_, ...) return cache[k](cache, ...) end end })
end

local function median(xs)
  local s = {}
  for i, x in ipairs(xs) do
    s[i] = x
  end
  table.sort(s)
  return s[math.floor((#s + 1) / 2)]
end

-- Least-squares slope of ys over their index.
local function slope(ys)
  local n = #ys
  if n < 2 then
    return 0
  end
  local mx, my = (n + 1) / 2, 0
  for _, y in ipairs(ys) do
    my = my + y / n
  end
  local num, den = 0, 0
  for i, y in ipairs(ys) do
    num = num + (i - mx) * (y - my)
    den = den + (i - mx) ^ 2
  end
  return num / den
end

local server = llm_server.start()
local root = proc.tempdir()
local project = root .. "/project"
os.execute("mkdir -p " .. proc.quote(project))
write(project .. "/value.lua", "return 1\n")
local cache = remembering(assert(po.cache.open { path = root .. "/cache", max_entries = 64 }))

local failures, samples = {}, { rss = {}, fds = {}, heap = {} }
local rounds, cycles, candidates, killed, damaged, faults_seen = 0, 0, 0, 0, 0, 0
local deadline = po.now() + minutes * 60

local function round(n)
  local fault = FAULTS[(n - 1) % #FAULTS + 1] .. ";round=" .. n
  local router = po.llm.router {
    deployments = {
      { provider = "openai", base_url = server.url .. "/v1", model = "soak-a", headers = { ["X-Test-Fault"] = fault },
        idle_timeout = 1, ttft_timeout = 1 },
      { provider = "anthropic", base_url = server.url, model = "soak-b", api_key = "sk-soak-0123456789" },
    },
    retries = 1, backoff = { base = 0.01, max = 0.05 }, cache = cache,
  }
  local kill = n % 3 == 0
  -- The reply is the prompt (the server echoes it): round n's candidates,
  -- the first of which asks its tests validator to kill itself.
  local function reply(state, i)
    local body = ("return %d -- round %d cycle %d proposal %d%s"):format(i, n, state.cycle, i,
      kill and i == 1 and " KILL" or "")
    return { { role = "user", content = "```lua\n" .. body .. "\n```\n" } }
  end
  local out = root .. "/run-" .. n
  local task = {
    id = "soak", workdir = project, target_files = { "value.lua" }, method = "llm-rewrite",
    candidates_per_cycle = CANDIDATES, model = "soak", prompts = { rewrite = reply },
    validators = {
      po.validate.syntax { lang = "lua", stage = 1 },
      po.validate.tests { argv = { "sh", "-c", "grep -q KILL value.lua && kill -9 $$; exit 0" }, stage = 2 },
    },
    objective = {
      validator = po.validate.benchmark { name = "benchmark", argv = { "true" }, repeats = 3, warmup = 0 },
      direction = "min",
    },
    budget = { cycles = CYCLES },
  }
  local ok, result = pcall(po.optimizer.run, task, { router = router, output = out, quiet = true })
  if not ok then
    failures[#failures + 1] = ("round %d (%s) raised: %s"):format(n, fault, tostring(result))
    return
  end
  if result.cycles ~= CYCLES then
    failures[#failures + 1] = ("round %d (%s): %d of %d cycles (%s)"):format(n, fault, result.cycles, CYCLES,
      tostring(result.stopped))
  end
  local stats = result.collector:statistics()
  local recorded = stats.overall_stats.total_cycles
  if recorded ~= result.cycles then
    failures[#failures + 1] = ("round %d: %d cycles ran, %d recorded"):format(n, result.cycles, recorded)
  end
  -- The log also holds each cycle's timing spans: count the candidates.
  local logged = #events(result.events, "candidate")
  if logged ~= result.cycles * CANDIDATES then
    failures[#failures + 1] = ("round %d: %d candidates in the event log, %d expected"):format(n, logged,
      result.cycles * CANDIDATES)
  end
  cycles, candidates = cycles + result.cycles, candidates + logged
  if kill then
    killed = killed + 1
  end
  for _, by in pairs(router:stats().by_provider) do
    faults_seen = faults_seen + by.errors
  end
  result.collector:close()
  proc.rmdir(out)
  -- The next round sends new prompts; damaging this round's last entry and
  -- asking for it again checks that a damaged entry is survived.
  if n % 5 == 0 and cache.damage() then
    damaged = damaged + 1
    local res, err, code = router:complete { model = "soak", messages = reply({ cycle = CYCLES }, CANDIDATES) }
    if not res and code ~= "ECACHE" then
      failures[#failures + 1] = ("round %d: a damaged cache entry gave %s (%s)"):format(n, tostring(code), tostring(err))
    end
  end
  cache.forget()
end

local t0 = po.now()
while po.now() < deadline and #failures < 20 do
  rounds = rounds + 1
  round(rounds)
  local s = procstat.sample()
  for k, v in pairs(s) do
    samples[k][rounds] = v
  end
  if rounds % 50 == 0 then
    io.stdout:write(("soak: round %d, %.1f min: rss %.2fMiB, fds %d, heap %.2fMiB\n"):format(rounds,
      (po.now() - t0) / 60, s.rss / 2 ^ 20, s.fds, s.heap / 2 ^ 20))
    io.stdout:flush()
  end
end
local elapsed = po.now() - t0
server:stop()
cache:close()
proc.rmdir(root)

-- Flat: the median of the last quarter of the rounds against that of the
-- first (after the first round, the warm-up), with a small allowance.
local LIMITS = { rss = { 16 * 2 ^ 20, 0.10 }, fds = { 2, 0 }, heap = { 2 ^ 20, 0.10 } }
local UNITS = { rss = { 2 ^ 20, "MiB" }, fds = { 1, "" }, heap = { 2 ^ 20, "MiB" } }
print(("soak: %.1f minutes, %d rounds, %d cycles, %d candidates recorded; %d router errors survived, "
  .. "%d validators killed, %d damaged cache entries"):format(elapsed / 60, rounds, cycles, candidates, faults_seen,
  killed, damaged))
if rounds < 5 then
  failures[#failures + 1] = "fewer than 5 rounds: too short to judge growth"
else
  for _, k in ipairs { "rss", "fds", "heap" } do
    local xs = { unpack(samples[k], 2) }
    local q = math.max(1, math.floor(#xs / 4))
    local first, last = median { unpack(xs, 1, q) }, median { unpack(xs, #xs - q + 1) }
    local abs, rel = LIMITS[k][1], LIMITS[k][2]
    local unit, name = UNITS[k][1], UNITS[k][2]
    local grew = last - first
    local ok = grew <= math.max(abs, rel * first)
    print(("soak: %-4s first quarter %.2f%s, last quarter %.2f%s, slope %+.4f%s per round: %s"):format(k,
      first / unit, name, last / unit, name, slope(xs) / unit, name, ok and "flat" or "GROWS"))
    if not ok then
      failures[#failures + 1] = ("%s grew by %.2f%s"):format(k, grew / unit, name)
    end
  end
end
for _, f in ipairs(failures) do
  print("soak: FAILED: " .. f)
end
print(#failures == 0 and "soak: ok" or "soak: FAILED")
os.exit(#failures == 0 and 0 or 1)
