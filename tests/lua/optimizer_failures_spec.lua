-- Failures said plainly, and scores of several objectives: LLM calls that
-- fail (all of them: the run exits non-zero naming the error; some: the
-- cycle line says how many), a failing test's own output in the next
-- prompt, tuple scores end to end and a Pareto front across cycles.
local po = require "poengine"
local proc = require "tests.tools.proc"
local llm_server = require "tests.tools.llm_server"

local source = os.getenv("POENGINE_SOURCE_DIR") or "."
local wordfreq = source .. "/examples/projects/wordfreq"
local q = proc.quote

local events = require "tests.tools.events"

local function wordfreq_task(extra)
  local exe = po.executable()
  local task = {
    id = "spec-failures",
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
      direction = "min", confirm = false, max_runs = 6,
    },
    budget = { cycles = 3 },
  }
  for k, v in pairs(extra or {}) do
    task[k] = v
  end
  return task
end

describe("po.optimizer: LLM calls that fail", function()
  local server = llm_server.for_spec(setup, teardown, before_each)
  local out
  before_each(function()
    out = proc.tempdir()
  end)
  after_each(function()
    proc.rmdir(out)
  end)

  local function router(model)
    return po.llm.router { retries = 0, deployments = { { provider = "openai", base_url = server.url .. "/v1",
      model = model, api_key = "sk-failures-SECRET-77" } } }
  end

  it("a run whose every call fails returns nil, the first error and its code, after one cycle", function()
    local lines = {}
    local res, err, code = po.optimizer.run(wordfreq_task { model = "m#fault=status;status=401" },
      { router = router("m#fault=status;status=401"), output = out, progress = function(l) lines[#lines + 1] = l end })
    assert.is_nil(res)
    assert.matches("^po%.optimizer: 2 of 2 LLM calls failed: .*401", err)
    assert.is_nil(err:find("\n"))
    assert.is_nil(err:find("SECRET", 1, true))
    assert.is_string(code)
    assert.are.equal(2, server:stats().requests) -- one cycle, not three
    assert.are.equal(1, #lines)
    assert.matches("^cycle 1 of 3: 2 of 2 LLM calls failed: .*401", lines[1])
    assert.not_matches("unusable", lines[1])
    local ev = events(out .. "/events.jsonl", "llm_failed")
    assert.are.equal(1, #ev)
    assert.are.same({ 2, 2 }, { ev[1].failed, ev[1].total })
  end)

  it("poengine optimize exits 1 with the error in one line", function()
    local task_file = out .. "/task.lua"
    local f = assert(io.open(task_file, "w"))
    f:write(([[
local po = require "poengine"
return {
  id = "spec-cli-failures", workdir = %q, target_files = { "wordfreq.lua" }, candidates_per_cycle = 2,
  model = "m#fault=status;status=401",
  router = po.llm.router { retries = 0, deployments = { { provider = "openai", base_url = %q, api_key = "sk-x" } } },
  objective = { validator = po.validate.benchmark { argv = { "true" } } },
  budget = { cycles = 2 },
}
]]):format(wordfreq, server.url .. "/v1"))
    f:close()
    local status, stdout, stderr = proc.sh(q(po.executable()) .. " optimize " .. q(task_file) .. " --output "
      .. q(out .. "/run"))
    assert.are.equal(1, status, stderr)
    assert.matches("^poengine optimize: po%.optimizer: 2 of 2 LLM calls failed: [^\n]*401[^\n]*\n$", stderr)
    assert.matches("cycle 1 of 2: 2 of 2 LLM calls failed", stdout)
  end)

  it("a cycle where some calls fail says how many, and goes on with the replies it has", function()
    local lines = {}
    local model = "m#fault=status;status=401;times=1"
    local task = wordfreq_task {
      model = model, budget = { cycles = 1 },
      prompts = { rewrite = function()
        return { { role = "user", content = "Here:\n```lua\n" .. io.open(wordfreq .. "/wordfreq.lua"):read("*a")
          .. "-- a comment\n```\n" } }
      end },
    }
    local res = po.optimizer.run(task, { router = router(model), output = out,
      progress = function(l) lines[#lines + 1] = l end })
    assert.is_table(res)
    assert.are.equal(1, res.cycles)
    assert.matches("^cycle 1 of 1: 2 candidates %(1 of 2 LLM calls failed: [^)]*401.*%), 1 validated", lines[1])
  end)

  it("a failing test's name and its message reach the next prompt the server receives", function()
    local bad = io.open(wordfreq .. "/wordfreq.lua"):read("*a"):gsub("d%.word < best%.word", "d.word > best.word")
    assert(bad:find("d.word > best.word", 1, true), "the fixture changed: the bad candidate is the same as the good")
    local task = wordfreq_task {
      model = "gpt-4o-mini", candidates_per_cycle = 1, budget = { cycles = 2 },
      prompts = { rewrite = function(state)
        if state.cycle == 1 then -- the server echoes this: a candidate that breaks the tie order
          return { { role = "user", content = "Here:\n```lua\n" .. bad .. "```\n" } }
        end
        return po.optimizer.prompts.rewrite(state)
      end },
    }
    local res = po.optimizer.run(task, { router = router("gpt-4o-mini"), output = out, quiet = true })
    assert.is_table(res)
    assert.are.equal(2, res.cycles)
    local body = server:stats().last_body
    local prompt = body.messages[#body.messages].content
    assert.matches("c1%.1: failed at tests", prompt)
    assert.matches("FAIL ties alphabetical: got {pear=2, fig=2, apple=2}", prompt, 1, true)
    assert.matches("%d+ passed, [1-9] failed", prompt)
  end)
end)

describe("the evidence of a failed validation", function()
  it("keeps the first failing assertion of a long output and its summary", function()
    local lines = {}
    for i = 1, 300 do
      lines[#lines + 1] = "ok " .. i .. " - case number " .. i .. " passes"
    end
    lines[150] = "not ok 150 - parses the header\n  expected: 200\n  got: 404\n  at test_http.lua:88"
    lines[#lines + 1] = "299 passed, 1 failed"
    local report = { results = { { name = "tests", status = "failed", passed = false,
      errors = { "1 failed, 0 errors (plain)" }, stdout = table.concat(lines, "\n"), stderr = "" } } }
    local text = require("poengine.optimizer.propose").evidence_of(report)
    assert.is_true(#text <= 1500)
    assert.matches("1 failed, 0 errors", text, 1, true)
    assert.matches("not ok 150 - parses the header\n  expected: 200\n  got: 404\n  at test_http.lua:88", text, 1, true)
    assert.matches("299 passed, 1 failed", text, 1, true)
    assert.not_matches("ok 3 %- case", text)
  end)
end)

-- A project of one file, point.txt, holding two numbers. Its "benchmark"
-- prints them and the metric is the first: a figure with no noise, so the
-- verdicts are certain. The score is the pair.
local function point_task(dir, extra)
  local task = {
    id = "spec-tuple", workdir = dir, target_files = { "point.txt" },
    objective = {
      validator = po.validate.benchmark { argv = { "cat", "point.txt" }, warmup = 0,
        metric = function(r) return tonumber(r.stdout:match("^(%S+)")) end },
      direction = "min", confirm = false, max_runs = 8,
    },
    score = function(c)
      local f = assert(io.open(c.dir .. "/point.txt"))
      local a, b = f:read("*a"):match("^(%S+) (%S+)")
      f:close()
      return { tonumber(a), tonumber(b) }
    end,
  }
  for k, v in pairs(extra) do
    task[k] = v
  end
  return task
end

local function points(list)
  local out = {}
  for i, p in ipairs(list) do
    out[i] = { files = { ["point.txt"] = p .. "\n" } }
  end
  return out
end

describe("po.optimizer: scores of several objectives", function()
  local dir, out
  before_each(function()
    dir, out = proc.tempdir(), proc.tempdir()
    assert(po.files.write({ { path = "point.txt", content = "8 1\n" } }, { root = dir })[1].ok)
  end)
  after_each(function()
    proc.rmdir(dir)
    proc.rmdir(out)
  end)

  it("compares tuples component by component, each in its direction, and records and shows them", function()
    local lines = {}
    local task = point_task(dir, {
      budget = { cycles = 1 },
      method = function() return points { "4 1", "4 5", "16 9" } end,
    })
    task.objective.directions = { "min", "max" }
    local res = assert(po.optimizer.run(task, { output = out, progress = function(l) lines[#lines + 1] = l end }))
    assert.are.equal(1, #res.accepted)
    assert.are.equal("c1.2", res.accepted[1].id) -- as fast as c1.1, and higher in the second component
    assert.are.same({ 4, 5 }, res.best_score)
    assert.are.same({ 8, 1 }, res.baseline_score) -- the baseline's score from its own directory
    assert.matches("best score %(4, 5%).*%(baseline %(8, 1%)%)", lines[1])
    local rec = res.collector:recent(1)[1]
    assert.are.equal(4, rec.score)
    assert.are.same({ 4, 5 }, rec.metadata.score)
    assert.are.same({ 4, 5 }, rec.metadata.best_score)
  end)

  it("keeps the Pareto front across cycles in the result, the event log and the dashboard", function()
    local cycles = {
      { "3 7", "5 5", "6 6" }, -- 6 6 is dominated by 5 5
      { "7 3", "4 8", "5 5" }, -- 4 8 by 3 7; 5 5 is already on the front
    }
    local task = point_task(dir, {
      id = "spec-pareto", budget = { cycles = 2 },
      method = function(state) return points(cycles[state.cycle]) end,
    })
    task.objective.pareto = true
    local res = assert(po.optimizer.run(task, { output = out, quiet = true }))
    assert.are.equal(2, res.cycles)
    local front = {}
    for i, e in ipairs(res.pareto) do
      front[i] = e.id .. "=" .. table.concat(e.score, ",")
    end
    assert.are.same({ "c1.1=3,7", "c1.2=5,5", "c2.1=7,3" }, front)
    local ev = events(res.events, "pareto")
    assert.are.same(res.pareto[3].score, ev[#ev].front[3].score)
    assert.are.equal(2, ev[#ev].cycle)
    local text = po.dashboard.new(res.collector, { sections = { "pareto" } }):render("text")
    assert.matches("c2%.1%s.*%(7, 3%)", text)
    assert.matches("c1%.2%s.*%(5, 5%)", text)
  end)

  it("a task's objective.directions must list 'min' and 'max'", function()
    local task = point_task(dir, { method = function() return {} end })
    task.objective.directions = { "up" }
    assert.has_error(function() po.optimizer.new(task, { output = out }) end,
      "po.optimizer: task.objective.directions must be a list of 'min' and 'max'")
  end)
end)
