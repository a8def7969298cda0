-- The optimization cycle end to end: a cycle against the test LLM server
-- with a known-good and a known-bad candidate, refused diffs, a run killed
-- mid-cycle and resumed, the budget, and the examples.
local po = require "poengine"
local proc = require "tests.tools.proc"
local llm_server = require "tests.tools.llm_server"

local source = os.getenv("POENGINE_SOURCE_DIR") or "."
local wordfreq = source .. "/examples/projects/wordfreq"
local q = proc.quote

local function read(path)
  local f = assert(io.open(path, "rb"))
  local s = f:read("*a")
  f:close()
  return s
end

local events = require "tests.tools.events"

-- The fast, correct version of wordfreq.top, and a fast one that breaks
-- the tie order its tests require.
local good = [==[
local M = {}
function M.top(words, k)
  local counts, distinct = {}, {}
  for i = 1, #words do
    local w = words[i]
    if counts[w] then counts[w] = counts[w] + 1 else counts[w] = 1; distinct[#distinct + 1] = w end
  end
  table.sort(distinct, function(a, b)
    if counts[a] ~= counts[b] then return counts[a] > counts[b] end
    return a < b
  end)
  local result = {}
  for i = 1, math.min(k, #distinct) do result[i] = { word = distinct[i], count = counts[distinct[i]] } end
  return result
end
return M
]==]
local bad = (good:gsub("    return a < b\n", "    return false\n"))

local function wordfreq_task(exe, extra)
  local task = {
    id = "spec-wordfreq",
    workdir = wordfreq,
    target_files = { "wordfreq.lua" },
    method = "llm-rewrite",
    candidates_per_cycle = 2,
    validators = {
      po.validate.syntax { lang = "lua", stage = 1 },
      po.validate.tests { argv = { exe, "test_wordfreq.lua" }, stage = 2 },
    },
    objective = {
      validator = po.validate.benchmark {
        name = "benchmark", argv = { exe, "bench_wordfreq.lua" }, repeats = 3, warmup = 0,
        metric = function(r) return tonumber(r.stdout:match("seconds ([%d.]+)")) end,
      },
      direction = "min",
    },
    budget = { cycles = 1 },
  }
  for k, v in pairs(extra or {}) do
    task[k] = v
  end
  return task
end

describe("po.optimizer", function()
  local server = llm_server.for_spec(setup, teardown, before_each)
  local out
  before_each(function()
    out = proc.tempdir()
  end)
  after_each(function()
    proc.rmdir(out)
  end)

  it("runs a cycle against the LLM server: the good candidate is accepted, the bad one stopped at its tests", function()
    local router = po.llm.router {
      deployments = { { provider = "openai", base_url = server.url .. "/v1", api_key = "sk-spec-secret-0123456789abcdef" } },
    }
    -- The server echoes the last user message: the template puts a reply
    -- in it, the good one for proposal 1 and the bad one for proposal 2.
    local task = wordfreq_task(po.executable(), {
      model = "gpt-4o-mini",
      prompts = { rewrite = function(state, i)
        return { { role = "user", content = "Here it is:\n```lua\n" .. (i == 1 and good or bad) .. "```\n" } }
      end },
    })
    -- global_collector: the router records its calls in po.metrics.global(),
    -- which is then the run's collector.
    local result = po.optimizer.run(task, { router = router, output = out, quiet = true, global_collector = true })
    assert.are.equal(1, result.cycles, result.stopped)
    assert.are.equal(1, #result.accepted)
    assert.are.equal("c1.1", result.accepted[1].id)
    assert.is_true(result.accepted[1].speedup > 1)
    assert.are.equal(2, server:stats().requests)

    local ev = events(result.events, "candidate")
    assert.are.equal(2, #ev)
    assert.is_true(ev[1].accepted)
    assert.are.equal("faster", ev[1].verdict)
    assert.matches("%+  table.sort%(distinct", ev[1].diff)
    assert.is_false(ev[2].accepted)
    assert.are.equal("tests", ev[2].stage)
    assert.are.same({ "syntax", "tests" }, { ev[2].results[1].name, ev[2].results[2].name })
    assert.are.equal("failed", ev[2].results[2].status)

    local stats = result.collector:statistics()
    assert.are.equal(1, stats.overall_stats.total_cycles)
    assert.are.equal(2, stats.cache_stats.total_llm_calls)
    local cycle = result.collector:recent(1)[1]
    assert.is_true(cycle.success)
    assert.is_true(cycle.validation_count >= 5) -- baseline and two candidates through the cascade, benchmarks
    assert.is_true(cycle.tokens_in > 0)
    assert.is_number(cycle.best_score)

    -- The patch holds the accepted change; the project itself is untouched.
    assert.matches("table.sort%(distinct", read(result.patch))
    assert.not_matches("table.sort", read(wordfreq .. "/wordfreq.lua"))
    assert.is_nil(read(result.events):find("sk%-spec%-secret"))
  end)

  it("changes no global state unless asked, and returns nil, message, code when a run cannot start", function()
    local global = po.metrics.global()
    local task = wordfreq_task(po.executable(), {
      method = function() return { { files = { ["wordfreq.lua"] = good } } } end,
    })
    local opt = assert(po.optimizer.new(task, { output = out, quiet = true }))
    assert.are_not.equal(global, opt.collector)
    assert.are.equal(global, po.metrics.global())

    local missing = wordfreq_task(po.executable(), { method = "search", space = { n = { 1, 2 } },
      workdir = out .. "/no-such/dir" })
    local none, err, code = po.optimizer.new(missing, { output = out })
    assert.is_nil(none)
    assert.matches("task.workdir: no such directory", err)
    assert.are.equal("ENOENT", code)
    local unreadable = wordfreq_task(po.executable(), { method = "search", space = { n = { 1, 2 } },
      target_files = { "wordfreq.lua/inside" } })
    none, err, code = po.optimizer.run(unreadable, { output = out })
    assert.is_nil(none)
    assert.matches("cannot read the target files: wordfreq.lua/inside", err)
    assert.is_string(code)
    -- Mistakes in the task still raise, naming the field.
    assert.has_error(function() po.optimizer.new(wordfreq_task("x", { metod = "search" })) end,
      "po.optimizer: unknown field 'task.metod'")
  end)

  it("refuses diffs that leave the target files, writing nothing outside", function()
    local escapes = {
      "--- a/wordfreq.lua\n+++ b/../../escaped.lua\n@@ -1 +1 @@\n-x\n+y\n",
      "--- /dev/null\n+++ b/test_wordfreq.lua.new\n@@ -0,0 +1 @@\n+os.exit(0)\n",
    }
    local task = wordfreq_task(po.executable(), {
      method = function(state)
        return { { diff = escapes[1] }, { diff = escapes[2] } }
      end,
    })
    local result = po.optimizer.run(task, { output = out, quiet = true })
    local ev = events(result.events, "candidate")
    assert.are.equal(2, #ev)
    assert.matches("climbs out", ev[1].malformed)
    assert.matches("not one of the target files", ev[2].malformed)
    assert.are.equal(0, #result.accepted)
    assert.is_nil(io.open(wordfreq .. "/../../escaped.lua"))
    assert.is_nil(io.open(wordfreq .. "/test_wordfreq.lua.new"))
  end)

  it("stops at the token budget", function()
    local router = po.llm.router { deployments = { { provider = "openai", base_url = server.url .. "/v1" } } }
    local task = wordfreq_task(po.executable(), {
      model = "gpt-4o-mini",
      budget = { cycles = 5, tokens = 1 },
      prompts = { rewrite = function() return { { role = "user", content = "no code here" } } end },
    })
    local result = po.optimizer.run(task, { router = router, output = out, quiet = true })
    assert.are.equal(1, result.cycles)
    assert.are.equal("tokens", result.stopped)
    assert.are.equal(2, server:stats().requests)
  end)

  it("resumes a run SIGKILLed mid-cycle without repeating finished cycles", function()
    local work = proc.tempdir()
    assert(po.files.write({ { path = "value.txt", content = "x\n" } }, { root = work })[1].ok)
    local flow = source .. "/tests/fixtures/optimizer/resume_flow.lua"
    local first = po.run { argv = { po.executable(), flow, out, work } }
    -- The third cycle's validators hold until released: once one of them
    -- has started, the run is inside cycle 3 and cannot leave it.
    local deadline = po.now() + 60
    local started = ""
    while po.now() < deadline and not started:find('"n":6', 1, true) do
      po.sleep(0.05)
      local f = io.open(out .. ".started")
      if f then
        started = f:read("*a")
        f:close()
      end
    end
    assert.truthy(started:find('"n":6', 1, true), "cycle 3 never started: " .. started)
    local pid = read(out .. ".pid")
    assert.are.equal(0, os.execute("kill -KILL " .. pid))
    local r = first:wait(10)
    assert(io.open(out .. ".release", "w")):close() -- lets the orphaned validators end
    assert.are.equal("SIGKILL", r.signal)
    local per_cycle_before = {}
    for _, e in ipairs(events(out .. "/events.jsonl")) do
      if (e.kind or "candidate") == "candidate" then -- a candidate's verdict, not a timing or final record
        per_cycle_before[e.cycle] = (per_cycle_before[e.cycle] or 0) + 1
      end
    end
    assert.are.same({ 2, 2 }, per_cycle_before) -- two whole cycles, nothing of the third

    local second = po.run_sync { argv = { po.executable(), flow, out, work, "resume" }, timeout = 120 }
    assert.are.equal("ok", second.status, second.stderr)
    assert.matches("finished\t6\tcycles", second.stdout)
    local per_cycle = {}
    for _, e in ipairs(events(out .. "/events.jsonl", "candidate")) do
      per_cycle[e.cycle] = (per_cycle[e.cycle] or 0) + 1
    end
    for c = 1, 6 do
      assert.are.equal(2, per_cycle[c], "cycle " .. c)
    end
    -- The grid went on where it stopped: the best point is the last one.
    assert.matches('{"n":13}', second.stdout)
    proc.rmdir(work)
    os.remove(out .. ".pid")
    os.remove(out .. ".started")
    os.remove(out .. ".release")
  end)
end)

describe("po.optimizer with its output inside the workdir", function()
  it("copies the workdir into sandboxes without the run's own directory", function()
    local work = proc.tempdir()
    assert(po.files.write({ { path = "notes.txt", content = "spin\n" } }, { root = work })[1].ok)
    local spin = (os.getenv("POENGINE_BUILD_DIR") or "build") .. "/tests/bench_spin"
    local result = assert(po.optimizer.run({
      id = "inside", workdir = work, target_files = { "notes.txt" },
      baseline_params = { rounds = 2000 },
      apply_params = function(params, dir)
        assert(po.files.write({ { path = "rounds.txt", content = tostring(params.rounds) } }, { root = dir })[1].ok)
      end,
      method = function() return { { params = { rounds = 1000 } } } end,
      -- Each sandbox must hold the workdir's files and nothing of the run.
      validators = { { name = "no run inside", run = { "sh", "-c", "test -f notes.txt && test ! -e runs/inside" } } },
      objective = { direction = "min", validator = po.validate.benchmark { name = "spin",
        argv = { "sh", "-c", spin .. " $(cat rounds.txt)" }, metric = function(r) return tonumber(r.stdout) end } },
      budget = { cycles = 1 },
    }, { output = work .. "/runs/inside", quiet = true }))
    proc.rmdir(work)
    assert.are.equal(1, #result.accepted)
    assert.are.equal("cycles", result.stopped)
  end)
end)

describe("the examples", function()
  local home
  before_each(function()
    home = proc.tempdir()
  end)
  after_each(function()
    proc.rmdir(home)
  end)

  local function run_example(args)
    return proc.sh("cd " .. q(source) .. " && POENGINE_HOME=" .. q(home)
      .. " env -u OPENAI_API_KEY -u ANTHROPIC_API_KEY -u OLLAMA_HOST " .. q(po.executable()) .. " " .. args)
  end

  it("quickstart runs offline, and its second run is served by the cache", function()
    local status, out, err = run_example("examples/quickstart.lua")
    assert.are.equal(0, status, err)
    assert.matches("bundled sample replies", out)
    assert.matches("cycle 1 accepted c1%.1", out)
    assert.matches("measured side by side", out)
    assert.matches("dashboard: .*dashboard%.html", out)
    assert.matches("answered from the cache: 0 ", out)
    status, out = run_example("examples/quickstart.lua")
    assert.are.equal(0, status)
    assert.matches("answered from the cache: [1-9]", out)
  end)

  it("tune_flags runs its search and reports what it found", function()
    local status, out, err = run_example("examples/tune_flags.lua 1")
    assert.are.equal(0, status, err)
    assert.matches("stopped after 1 cycles %(cycles%)", out)
    assert.matches("cycle 1 of 1: 4 candidates, 4 validated", out)
    -- Its own run id, apart from the task file's "tune-flags".
    local events = io.open(home .. "/runs/tune-flags-flow/events.jsonl")
    assert.truthy(events)
    events:close()
    assert.is_nil(io.open(home .. "/runs/tune-flags/events.jsonl"))
    -- Which flags win, and whether the final side-by-side measurement calls
    -- them "faster" or "same", depends on the machine's noise (a loaded
    -- machine can leave even -O1 inside -O0's spread); the report's shape
    -- does not.
    if out:find("best flags:", 1, true) then
      assert.matches("%-O0 took [%d.]+ s, the best flags [%d.]+ s: [%d.]+x faster %(%a+, measured side by side%)", out)
    end
  end)

  it("custom_flow runs its cycle and prints its dashboard", function()
    local status, out, err = run_example("examples/custom_flow.lua")
    assert.are.equal(0, status, err)
    assert.matches("proposal 1: passed", out)
    assert.matches("proposal 3: rejected", out)
    assert.matches("LLM calls +3", out)
  end)
end)
