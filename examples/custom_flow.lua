-- custom_flow.lua: a flow written by hand on the primitives, as a template.
--
-- No po.optimizer here: this is what it does, spelled out in one page, for
-- when a flow needs its own shape. A "model" (a lua provider standing in for
-- an LLM, so this runs offline) proposes three versions of a string-joining
-- function; the router asks for all three at once, through a cache. Each
-- version is written to its own directory, checked for syntax (a child
-- process), tested in an isolated one, and timed beside the original; the
-- collector records the cycle and the dashboard summarizes it.
--
--   scripts/run examples/custom_flow.lua

local original = [[
return function(words)
  local s = ""
  for i = 1, #words do
    s = s .. words[i] .. ","
  end
  return s
end
]]

local proposals = {
  "return function(words)\n  return table.concat(words, \",\") .. (#words > 0 and \",\" or \"\")\nend\n",
  "return function(words)\n  local t = {}\n  for i = 1, #words do t[#t + 1] = words[i] .. \",\" end\n  return table.concat(t)\nend\n",
  "return function(words)\n  return table.concat(words, \",\")\nend\n", -- drops the last comma: wrong
}

-- 1. A model behind a router with a cache. The lua provider answers by the
-- proposal number the request carries in its metadata (never sent).
local cache = assert(po.cache.open { namespace = "custom_flow" }) -- memory only
local router = po.llm.router {
  deployments = { { provider = "lua", model = "offline", fn = function(req)
    return { text = proposals[req.metadata.n], usage = { input = 50, output = 30 } }
  end } },
  cache = cache,
}

-- 2. The collector, and one cycle.
local col = po.metrics.collector { max_history = 100 }
po.metrics.set_global(col) -- the router records its calls in the active cycle
col:start_cycle("custom-1", { flow = "custom" })

local futures = {}
for n = 1, #proposals do
  futures[n] = router:complete_async { prompt = "Make this faster:\n" .. original, metadata = { n = n }, seed = n }
end
local replies = assert(po.all(futures))

-- 3. Each proposal in its own directory, written atomically.
local root = os.tmpname()
os.remove(root)
local files = { { path = "original/join.lua", content = original } }
for n, reply in ipairs(replies) do
  files[#files + 1] = { path = "p" .. n .. "/join.lua", content = reply.text }
end
for _, r in ipairs(po.files.write(files, { root = root })) do
  assert(r.ok, r.err)
end
col:record_file_operation("custom-1", #files)

-- 4. Validators: syntax in a child process, correctness in another (isolated), speed
-- beside the original (measured alternately in the same run).
local function test_join(candidate)
  local join = dofile(candidate.dir .. "/join.lua")
  local cases = { { {}, "" }, { { "a" }, "a," }, { { "a", "b", "c" }, "a,b,c," } }
  for _, c in ipairs(cases) do
    local got = join(c[1])
    if got ~= c[2] then
      return false, { errors = { ("join(%d words) gave %q, want %q"):format(#c[1], got, c[2]) } }
    end
  end
  return true
end

local bench_script = [[
local join = dofile(arg[1] .. "/join.lua")
local words = {}
for i = 1, 4000 do words[i] = "w" .. i end
local t0 = os.clock()
for _ = 1, 3 do join(words) end
print(os.clock() - t0)]]
local bench_file = root .. "/bench.lua"
assert(po.files.write({ { path = "bench.lua", content = bench_script } }, { root = root })[1].ok)
local exe = po.executable()
local function seconds(r) return tonumber(r.stdout) end

for n = 1, #proposals do
  local dir = root .. "/p" .. n
  local report = po.validate.run({
    po.validate.syntax { lang = "lua", stage = 1 },
    -- Proposals are code nobody reviewed: test them in a child process that
    -- is killed at the deadline, with capped memory (an endless loop or a
    -- runaway allocation then fails the proposal instead of hanging the flow).
    { name = "tests", stage = 2, run = test_join, isolate = true, timeout = 10, memory_limit = 2 ^ 28 },
    po.validate.benchmark { name = "speed", stage = 3, argv = { exe, bench_file, dir }, metric = seconds,
      repeats = 3, baseline = { argv = { exe, bench_file, root .. "/original" } } },
  }, { dir = dir, file = dir .. "/join.lua" }, { cascade = true })
  col:record_validation("custom-1", report.duration, #report.results)
  local speed = report.by_name.speed
  print(("proposal %d: %s"):format(n, report.passed
    and ("passed, %.1fx faster than the original (%s)"):format(speed.details.speedup, speed.details.verdict)
    or ("rejected: " .. (report.results[2].errors[1] or report.results[1].status))))
end
col:end_cycle("custom-1", true)
po.run_sync { argv = { "rm", "-rf", root } }

-- 5. The record of the flow.
print(po.dashboard.new(col, { sections = { "overall", "llm" } }):render("text"))
