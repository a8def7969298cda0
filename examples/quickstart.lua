-- quickstart.lua: an LLM makes a slow function fast, and the engine proves it.
--
-- The bundled project examples/projects/wordfreq has a deliberately slow
-- function (it counts words by rescanning the list: quadratic), tests that
-- say what must stay true, and a benchmark. Each cycle asks the LLM for four
-- rewrites at once, through the router and its cache; every rewrite gets its
-- own sandbox, runs the cascade (syntax, then the tests) on the worker pool,
-- and once all of that has finished the survivors are timed beside the
-- current version, interleaved, measured again in the same cycle. Only a
-- rewrite judged "faster" by the calibrated rule (docs/optimizer.md,
-- "Timing") is accepted. Every cycle is recorded; at the end the
-- Markdown and HTML dashboards are written and the best rewrite is saved as
-- a patch (the project itself is left as it is).
--
-- With OPENAI_API_KEY, ANTHROPIC_API_KEY or OLLAMA_HOST set, the calls go to
-- that provider. Otherwise the replies come from a bundled file of sample
-- replies (projects/wordfreq/sample_replies.jsonl), and the output says so.
-- Run it twice: the second run's first-cycle calls are answered by the cache.
--
--   scripts/run examples/quickstart.lua [cycles]

local here = (arg and arg[0] or "examples/quickstart.lua"):match("^(.*)/[^/]*$") or "."
local project = here .. "/projects/wordfreq"
local cycles = tonumber(arg and arg[1]) or 2
local home = po.optimizer.home()

-- Where the LLM's answers come from.
local deployment, source
if os.getenv("OPENAI_API_KEY") then
  deployment, source = { provider = "openai", model = os.getenv("OPENAI_MODEL") or "gpt-4o-mini" }, "OpenAI"
elseif os.getenv("ANTHROPIC_API_KEY") then
  deployment = { provider = "anthropic", model = os.getenv("ANTHROPIC_MODEL") or "claude-3-5-haiku-latest" }
  source = "Anthropic"
elseif os.getenv("OLLAMA_HOST") then
  deployment, source = { provider = "ollama", model = os.getenv("OLLAMA_MODEL") or "llama3.1" }, "Ollama"
else
  -- Offline: the sample replies, four for the first cycle's four proposals
  -- and four for every later cycle (the optimizer puts the cycle and the
  -- proposal's number in the request's metadata, which is never sent).
  local replies = {}
  for line in io.lines(project .. "/sample_replies.jsonl") do
    local rec = assert(po.json.decode(line))
    replies[rec.request.cycle * 10 + rec.request.seed] = rec.response
  end
  deployment = {
    provider = "lua",
    name = "sample-replies",
    model = "sample-replies",
    fn = function(request)
      local meta = request.metadata or {}
      local r = replies[math.min(meta.cycle or 1, 2) * 10 + (meta.candidate or 1)]
      return { text = r.text, finish_reason = r.finish_reason, usage = r.usage }
    end,
  }
  source = "the bundled sample replies (no OPENAI_API_KEY, ANTHROPIC_API_KEY or OLLAMA_HOST set)"
end
print("LLM: " .. source)

local cache = assert(po.cache.open { path = home .. "/cache", namespace = "quickstart", max_entries = 10000, ttl = 0 })
local router = po.llm.router { deployments = { deployment }, cache = cache, retries = 2 }

local exe = po.executable()
local task = {
  id = "quickstart",
  description = "make wordfreq.top faster without changing its results",
  workdir = project,
  target_files = { "wordfreq.lua" },
  method = "llm-rewrite",
  candidates_per_cycle = 4,
  validators = {
    po.validate.syntax { lang = "lua", stage = 1 },
    po.validate.tests { argv = { exe, "test_wordfreq.lua" }, stage = 2, timeout = 60 },
  },
  objective = {
    validator = po.validate.benchmark {
      name = "benchmark", argv = { exe, "bench_wordfreq.lua" }, repeats = 5, warmup = 1,
      metric = function(r) return tonumber(r.stdout:match("seconds ([%d.]+)")) end,
    },
    direction = "min",
    metric = "seconds per call of wordfreq.top on 30,000 words",
  },
  budget = { cycles = cycles },
  stop = { stall_cycles = 2 },
}

-- global_collector: the run's collector becomes po.metrics.global(), where
-- the router records its calls, so the dashboard shows them per cycle.
local result = assert(po.optimizer.run(task, { router = router, progress = print, global_collector = true }))

print()
if result.warning then
  print("WARNING: " .. result.warning)
end
print(string.format("%d cycles (stopped: %s), %d candidates accepted, %d replies unusable",
  result.cycles, result.stopped, #result.accepted, result.malformed))
for _, a in ipairs(result.accepted) do
  print(string.format("  cycle %d accepted %s: %.2fx faster than the version before it", a.cycle, a.id, a.speedup or 0))
end
if result.final then
  print(string.format("original %.4f s, best %.4f s: %.1fx faster (%s, measured side by side); "
    .. "the accepted chain claimed %.1fx", result.final.original, result.final.best, result.final.speedup,
    result.final.verdict, result.chain_speedup))
end
local s = router:stats()
print(string.format("LLM calls: %d, answered from the cache: %d (%.0f%%), tokens %d, cost $%.4f",
  s.total_calls, s.cache.hits, s.cache.api_call_reduction, s.total_tokens, s.cost))
if result.patch then
  print("patch:     " .. result.patch)
end
print("events:    " .. result.events)
local d = po.dashboard.new(result.collector, { title = "quickstart: wordfreq" })
for _, ext in ipairs { "md", "html" } do
  local path = result.out_dir .. "/dashboard." .. ext
  assert(d:write(path))
  print("dashboard: " .. path)
end
