-- po.validate's edges: the argument checks of run, configure and the
-- built-ins, each naming what is wrong; the built-ins' output reading
-- (the message cap, a tests run that exits non-zero, pytest's error-only
-- line, a linter that passes with warnings or fails without file:line);
-- the candidate's files as pattern finds them; a benchmark's metric that
-- fails and require_speedup; an isolated function whose process ends
-- without a result.
local po = require "poengine"
local v = po.validate

local function tempdir()
  local d = os.tmpname()
  os.remove(d)
  assert(os.execute("mkdir -p " .. d) == 0)
  return d
end

local function write(path, text)
  local f = assert(io.open(path, "w"))
  f:write(text)
  f:close()
end

-- A shell command as argv.
local function sh(script)
  return { "sh", "-c", script }
end

describe("po.validate's argument checks", function()
  it("run: validators, candidate, options and each validator's fields", function()
    local ok = { name = "x", run = { "true" } }
    assert.has_error(function() v.run("x", {}) end,
      "po.validate.run: validators must be a list of validators, got string")
    assert.has_error(function() v.run({ ok }, 5) end, "po.validate.run: candidate must be a table or a file path, got number")
    assert.has_error(function() v.run({ ok }, {}, 5) end, "po.validate.run: options must be a table, got number")
    assert.has_error(function() v.run({ ok }, {}, { workers = 0 }) end,
      "po.validate.run: workers must be a number of at least 1")
    assert.has_error(function() v.run({ ok }, {}, { timeout = -1 }) end,
      "po.validate.run: timeout must be a positive number of seconds")
    assert.has_error(function() v.run({ "true" }, {}) end, "po.validate.run: validators[1] must be a table, got string")
    assert.has_error(function() v.run({ { name = "x", run = { "true" }, timeout = 0 } }, {}) end,
      "po.validate.run: validators[1] (x): timeout must be a positive number of seconds")
    assert.has_error(function() v.run({ { name = "x", run = { "true" }, stage = "1" } }, {}) end,
      "po.validate.run: validators[1] (x): stage must be a number")
    assert.has_error(function() v.run({ { name = "x", run = { "true" }, parse = "lines" } }, {}) end,
      "po.validate.run: validators[1] (x): parse must be a function")
    assert.has_error(function() v.configure(4) end, "po.validate.configure: options must be a table, got number")
  end)

  it("an executor of the run or of a validator is refused at the caller's line, naming where it is", function()
    local ok = { name = "x", run = { "true" } }
    local _, err = pcall(function() v.run({ { name = "x", run = { "true" }, executor = { kind = "cloud" } } }, {}) end)
    assert.matches("validate_more_spec%.lua:%d+: po%.validate%.run: validators%[1%] %(x%): executor: kind must be "
      .. "\"local\" or \"slurm\", got \"cloud\"$", err)
    _, err = pcall(function() v.run({ ok }, {}, { executor = "cloud" }) end)
    assert.matches("validate_more_spec%.lua:%d+: po%.validate%.run: executor must be \"local\", \"slurm\", "
      .. "\"default\" or a table { kind = ... }, got \"cloud\"$", err)
  end)

  it("the built-ins: argv, metric, a level's missing benchmark", function()
    assert.has_error(function() v.command {} end, "po.validate.command: argv must be a non-empty table of strings")
    assert.has_error(function() v.tests { argv = {} } end, "po.validate.tests: argv must be a non-empty table of strings")
    assert.has_error(function() v.benchmark { argv = { "true" }, metric = "cpu" } end,
      "po.validate.benchmark: metric must be \"wall\" or a function(result) -> number")
    assert.has_error(function() v.level("strict", { lang = "lua", tests = { "true" } }) end,
      "po.validate.level: strict needs benchmark = { argv = ... }")
  end)
end)

describe("po.validate's built-ins read their commands' output", function()
  local d
  before_each(function() d = tempdir() end)
  after_each(function() os.execute("rm -rf " .. d) end)

  it("a candidate given as a file path runs in that file's directory", function()
    write(d .. "/x.lua", "return 1\n")
    local report = v.run({ v.command { name = "here", argv = sh "test -f x.lua && test {file} = {dir}/x.lua" } },
      d .. "/x.lua")
    assert.is_true(report.by_name.here.passed, report.by_name.here.errors[1])
  end)

  it("keep at most 50 messages, of file:line lines or else of any non-empty lines", function()
    local report = v.run({
      v.syntax { name = "located", argv = sh "for i in $(seq 80); do echo f.c:$i: error; done; exit 1" },
      v.syntax { name = "plain", argv = sh "for i in $(seq 80); do echo oops $i; echo; done; exit 1" },
    }, {})
    local r = report.by_name
    assert.are.equal(50, #r.located.errors)
    assert.are.same({ "f.c:1: error", "f.c:50: error" }, { r.located.errors[1], r.located.errors[50] })
    assert.are.equal(50, #r.plain.errors)
    assert.are.same({ "oops 1", "oops 50" }, { r.plain.errors[1], r.plain.errors[50] })
  end)

  it("tests: a run that exits non-zero fails though its summary is clean; pytest's error-only line counts", function()
    local report = v.run({ v.tests { name = "t", argv = sh "echo '3 passed, 0 failed'; exit 2" } }, {})
    local r = report.by_name.t
    assert.is_false(r.passed)
    assert.are.same({ "exited with 2" }, r.errors)
    assert.are.same({ format = "pytest", passed = 0, failed = 0, errors = 1, skipped = 0, total = 1 },
      v.parse_test_summary("==== 1 error in 0.05s ===="))
  end)

  it("lint: a passing linter's file:line lines are warnings; a failing one without them gives its lines", function()
    local report = v.run({
      v.lint { name = "warns", argv = sh "echo 'a.c:2: style: x'; echo 'done'" },
      v.lint { name = "breaks", argv = sh "echo 'cannot read config' >&2; exit 3" },
      v.lint { name = "nomodule", argv = { "python3", "-m", "no_such_module_po_xyz", "{files}" } },
    }, {})
    local r = report.by_name
    assert.are.same({ true, { "a.c:2: style: x" } }, { r.warns.passed, r.warns.warnings })
    assert.are.same({ false, { "cannot read config" } }, { r.breaks.passed, r.breaks.errors })
    assert.are.same({ "skipped", { "lint: python3 -m no_such_module_po_xyz is not installed; skipped" } },
      { r.nomodule.status, r.nomodule.warnings })
  end)

  it("pattern: the candidate's files list; a candidate with no files, or a dir that is not there", function()
    write(d .. "/a.txt", "TODO here\n")
    write(d .. "/b.txt", "TODO there\n")
    local report = v.run({ v.pattern { deny = { "TODO" }, secrets = false } }, { files = { d .. "/b.txt" } })
    assert.are.same({ d .. "/b.txt:1: forbidden pattern 'TODO'" }, report.results[1].errors)
    report = v.run({ v.pattern { deny = { "TODO" } } }, {})
    assert.are.same({ false, { "the candidate has no files, file or dir" } },
      { report.results[1].passed, report.results[1].errors })
    report = v.run({ v.pattern { deny = { "TODO" } } }, { dir = d .. "/gone" })
    assert.is_false(report.results[1].passed)
    assert.matches("^cannot list " .. d:gsub("%p", "%%%0") .. "/gone: find: ", report.results[1].errors[1])
  end)

  it("benchmark: a metric that raises or returns no number; require_speedup fails a run that is not faster", function()
    local report = v.run({
      v.benchmark { name = "raises", argv = { "true" }, repeats = 1, metric = function() error("no figure") end },
      v.benchmark { name = "text", argv = { "echo", "x" }, repeats = 1, metric = function(r) return r.stdout end },
      v.benchmark { name = "same", argv = { "echo", "5" }, repeats = 3, warmup = 0, require_speedup = true,
        metric = function(r) return tonumber(r.stdout) end, baseline = { median = 5, mad = 0 } },
    }, {})
    local r = report.by_name
    assert.is_false(r.raises.passed)
    assert.matches("^metric: .*no figure", r.raises.errors[1])
    assert.are.same({ false, { "metric: returned string, not a number" } }, { r.text.passed, r.text.errors })
    assert.is_false(r.same.passed)
    assert.are.equal("same", r.same.details.verdict)
    assert.are.same({ "not clearly faster than the baseline: median 5 vs 5" }, r.same.errors)
  end)
end)

describe("an isolated function validator whose process ends without a result", function()
  it("says how it ended: its exit code, or the signal that killed it", function()
    local report = v.run({
      { name = "exits", isolate = true, run = function() os.exit(3) end },
      { name = "killed", isolate = true, run = function()
        local pid = io.open("/proc/self/stat"):read("*a"):match("^(%d+)")
        os.execute("kill -KILL " .. pid)
      end },
    }, {})
    local r = report.by_name
    assert.are.same({ "error", { "the isolated function's process exited with code 3 without a result" } },
      { r.exits.status, r.exits.errors })
    assert.are.same({ "error", { "the isolated function's process was killed by SIGKILL without a result" } },
      { r.killed.status, r.killed.errors })
  end)
end)

describe("validators stopped before their end", function()
  it("an inline function past its timeout, and a run whose {files} is empty", function()
    local report = v.run({
      { name = "slow", inline = true, timeout = 0.2, run = function() po.sleep(60) return true end },
      { name = "nofiles", run = { "cat", "{files}" } },
    }, { files = {} })
    local r = report.by_name
    assert.are.same({ "timeout", { "timed out after 0.2 s" } }, { r.slow.status, r.slow.errors })
    assert.are.same({ false, { "argv uses {files} but the candidate has no files" } },
      { r.nofiles.passed, r.nofiles.errors })
  end)

  it("with fail_fast, an inline function and an isolated one still running are canceled", function()
    local before = v.limits().concurrency
    v.configure { concurrency = 4 } -- all three run at once, whatever the machine's CPUs
    local report = v.run({
      { name = "inline", inline = true, run = function() po.sleep(60) return true end },
      { name = "isolated", isolate = true, run = function() os.execute("sleep 60") return true end },
      { name = "fails", run = sh "exit 1" },
    }, {}, { fail_fast = true })
    v.configure { concurrency = before }
    local r = report.by_name
    assert.are.equal("failed", r.fails.status)
    assert.are.same({ "canceled", { "canceled" } }, { r.inline.status, r.inline.errors })
    assert.are.equal("canceled", r.isolated.status)
  end)
end)

describe("po.validate.decide's checks and failures", function()
  local decide = require "poengine.validate.decide"

  it("refuses a min_effect out of [0, 1), samples that are not lists, a run that is not a function", function()
    assert.has_error(function() decide.compare_samples({ 1, 2 }, { 1, 2 }, { min_effect = 1 }) end,
      "po.validate.decide: min_effect must be a number in [0, 1)")
    assert.has_error(function() decide.compare_samples({ 1, 2 }, 3) end,
      "po.validate.decide: candidate and baseline must be arrays of samples")
    assert.has_error(function() decide.sequential(1, "run") end,
      "po.validate.decide.sequential: run must be a function(arm) -> number")
  end)

  it("a baseline sample that is not positive is EINVAL, naming the side", function()
    local r, msg, code = decide.compare_samples({ 1, 2 }, { 1, -1 })
    assert.are.same({ nil, "EINVAL" }, { r, code })
    assert.matches("^po%.validate%.decide: baseline ", msg)
  end)

  it("sequential: a run that fails in a timed round, or measures a negative time, ends it with the reason", function()
    local calls = 0
    local res, msg, code = decide.sequential(1, function()
      calls = calls + 1
      if calls > 4 then
        return nil, "the benchmark crashed", "EBENCH"
      end
      return 1
    end, { warmup = 1, seed = 1 })
    assert.are.same({ nil, "the benchmark crashed", "EBENCH" }, { res, msg, code })
    res, msg, code = decide.sequential(1, function(arm) return arm == 0 and 1 or -1 end, { warmup = 0, first = 2, seed = 1 })
    assert.are.same({ nil, "EINVAL" }, { res, code })
    assert.matches("^po%.validate%.decide: candidate ", msg)
  end)

  it("sequential with higher_is_better: a candidate no better stops as futile, not faster", function()
    local n = 0
    local res = assert(decide.sequential(1, function()
      n = n + 1
      return 100 + (n * 7919) % 13
    end, { higher_is_better = true, seed = 3, first = 4, max_runs = 40 }))
    assert.are_not.equal("faster", res.candidates[1].verdict)
    assert.is_true(res.candidates[1].runs < 40)
  end)
end)
