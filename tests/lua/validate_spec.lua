-- The parallel validator: po.validate.run, the built-ins and the levels.
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

-- The most validators running at once, from a log of "+" (start) and "-" (end) lines.
local function most_at_once(log)
  local running, most = 0, 0
  for line in io.lines(log) do
    running = running + (line == "+" and 1 or -1)
    most = math.max(most, running)
  end
  return most
end

-- Resizes the pool once the jobs earlier tests left running (timed-out
-- functions run to their end) have finished.
local function pool_workers(n)
  local deadline = po.now() + 10
  while po.pool.stats().in_flight > 0 and po.now() < deadline do
    po.sleep(0.01)
  end
  po.pool.configure { workers = n }
end

local function names(report)
  local out = {}
  for i, r in ipairs(report.results) do
    out[i] = r.name
  end
  return out
end

describe("po.validate.run", function()
  local d
  before_each(function() d = tempdir() end)
  after_each(function() os.execute("rm -rf " .. d) end)

  it("keeps results in input order when later validators finish first", function()
    local report = v.run({
      { name = "slow", run = { "sh", "-c", "sleep 0.4; echo slow" } },
      { name = "medium", run = { "sh", "-c", "sleep 0.2; echo medium" } },
      { name = "fast", run = { "echo", "fast" } },
      { name = "fn", run = function() return true, { note = "ok" } end },
    }, { dir = d })
    assert.are.same({ "slow", "medium", "fast", "fn" }, names(report))
    assert.are.equal("slow\n", report.results[1].stdout)
    assert.are.equal("fast\n", report.results[3].stdout)
    assert.are.same({ note = "ok" }, report.results[4].details)
    assert.is_true(report.passed)
    assert.are.equal(report.results[2], report.by_name.medium)
    local sum = 0
    for _, r in ipairs(report.results) do
      assert.are.same({}, r.errors)
      assert.are.equal("ok", r.status)
      sum = sum + r.duration
    end
    assert.are.equal(sum / report.duration, report.speedup)
  end)

  it("expands {dir}, {file} and {files} and runs in the candidate's directory", function()
    write(d .. "/a.txt", "A")
    write(d .. "/b.txt", "B")
    local report = v.run({
      { name = "dir", run = { "pwd" } },
      { name = "file", run = { "cat", "{file}" } },
      { name = "files", run = { "cat", "{files}" } },
      { name = "embedded", run = { "echo", "--root={dir}" } },
    }, { dir = d, file = d .. "/a.txt", files = { d .. "/a.txt", d .. "/b.txt" } })
    local real = io.popen("cd " .. d .. " && pwd -P"):read("*l")
    assert.are.equal(real .. "\n", report.by_name.dir.stdout)
    assert.are.equal("A", report.by_name.file.stdout)
    assert.are.equal("AB", report.by_name.files.stdout)
    assert.are.equal("--root=" .. d .. "\n", report.by_name.embedded.stdout)
    local missing = v.run({ { name = "m", run = { "cat", "{file}" } } }, { dir = d })
    assert.are.equal("error", missing.results[1].status)
    assert.are.same({ "argv uses {file} but the candidate has no file" }, missing.results[1].errors)
  end)

  it("reports failures, timeouts and missing commands under their own names", function()
    local report = v.run({
      { name = "exit3", run = { "sh", "-c", "exit 3" } },
      { name = "slow", run = { "sleep", "10" }, timeout = 0.2 },
      { name = "missing", run = { "no-such-validator-cmd" } },
      { name = "custom", run = { "echo", "score=7" }, parse = function(r)
        local score = tonumber(r.stdout:match("score=(%d+)"))
        return score >= 5, { score = score, warnings = { "score only " .. score } }
      end },
      { name = "badparse", run = { "true" }, parse = function() error("parser broke") end },
    }, { dir = d })
    assert.is_false(report.passed)
    local r = report.by_name
    assert.are.equal("failed", r.exit3.status)
    assert.are.same({ "exited with code 3" }, r.exit3.errors)
    assert.are.equal("timeout", r.slow.status)
    assert.are.same({ "timed out after 0.2 s" }, r.slow.errors)
    assert.are.equal("error", r.missing.status)
    assert.are.same({ "cannot execute 'no-such-validator-cmd': No such file or directory" }, r.missing.errors)
    assert.is_true(r.custom.passed)
    assert.are.equal(7, r.custom.details.score)
    assert.are.same({ "score only 7" }, r.custom.warnings)
    assert.are.equal("error", r.badparse.status)
    assert.matches("parse failed: .*parser broke", r.badparse.errors[1])
  end)

  it("gives a worker's error with its traceback, and times out a function", function()
    local report = v.run({
      { name = "raises", run = function(c)
        local function check(x) error("candidate " .. x .. " is broken") end
        check(c.id)
      end },
      { name = "spins", run = function() local t = po.now() while po.now() - t < 1 do end return true end,
        timeout = 0.1 },
    }, { id = "c42" })
    local r = report.by_name.raises
    assert.are.equal("error", r.status)
    assert.matches("validate_spec.lua:%d+: candidate c42 is broken", r.errors[1])
    assert.matches("stack traceback:", r.errors[1])
    assert.matches("in function 'check'", r.errors[1])
    assert.are.equal("timeout", report.by_name.spins.status)
  end)

  it("runs many function validators on the pool, results in input order with the worker's durations", function()
    local list = {}
    for i = 1, 300 do
      list[i] = { name = "f" .. i, run = function(c) return c.limit > 0, { seen = c.limit } end }
    end
    list[301] = { name = "mod", run = { module = "string", fn = "rep", arg = 2 } }
    local helper = function() end
    list[302] = { name = "bad-upvalue", run = function() return helper() end }
    local report = v.run(list, { limit = 7 })
    for i = 1, 300 do
      local r = report.results[i]
      assert.are.equal("f" .. i, r.name)
      assert.are.equal("ok", r.status)
      assert.are.same({ seen = 7 }, r.details)
      assert.is_true(r.duration >= 0 and r.duration < 10)
    end
    -- string.rep(candidate, 2) fails: a candidate table is not a string
    assert.are.equal("error", report.by_name.mod.status)
    assert.are.equal("error", report.by_name["bad-upvalue"].status)
    assert.matches("fn's upvalue 'helper' is a function", report.by_name["bad-upvalue"].errors[1], 1, true)
    assert.is_false(report.passed)
  end)

  it("with fail_fast cancels running pool functions and skips those not started", function()
    pool_workers(2)
    local report = v.run({
      { name = "long", run = function() local t = po.now() while po.now() - t < 0.5 do end return true end },
      { name = "fails", run = function() po.sleep(0.05) return false end },
      { name = "queued", run = function() return true end },
    }, {}, { fail_fast = true, workers = 2 })
    local r = report.by_name
    assert.are.equal("canceled", r.long.status)
    assert.are.equal("failed", r.fails.status)
    assert.are.equal("skipped", r.queued.status)
    pool_workers(po.pool.cpu_count())
  end)

  it("workers caps one run's pool functions too, and a function times out alone", function()
    pool_workers(2)
    local log = d .. "/log"
    local list = {}
    for i = 1, 4 do
      list[i] = { name = "w" .. i, run = function(c)
        local function note(s)
          local f = assert(io.open(c.log, "a"))
          f:write(s, "\n")
          f:close()
        end
        note("+")
        po.sleep(0.05)
        note("-")
        return true
      end }
    end
    list[5] = { name = "spins", timeout = 0.05, run = function() po.sleep(0.3) return true end }
    local report = v.run(list, { log = log }, { workers = 1 })
    assert.are.equal(1, most_at_once(log))
    for i = 1, 4 do
      assert.are.equal("ok", report.results[i].status)
    end
    assert.are.equal("timeout", report.by_name.spins.status)
    assert.matches("timed out after 0.05 s", report.by_name.spins.errors[1], 1, true)
    pool_workers(po.pool.cpu_count())
  end)

  it("with cascade runs stages in order and skips the later ones once a stage fails", function()
    local marker = d .. "/stage1-done"
    local report = v.run({
      { name = "s2-check", stage = 2, run = { "test", "-f", marker } },
      { name = "s1-a", stage = 1, run = { "sh", "-c", "sleep 0.1; touch " .. marker } },
      { name = "s1-b", stage = 1, run = { "true" } },
      { name = "s3", stage = 3, run = { "false" } },
      { name = "s4", stage = 4, run = { "true" } },
    }, { dir = d }, { cascade = true })
    local r = report.by_name
    assert.are.equal("ok", r["s2-check"].status) -- stage 1 had finished when stage 2 started
    assert.are.equal("failed", r.s3.status)
    assert.are.equal("skipped", r.s4.status)
    assert.is_false(r.s4.passed)
    assert.are.same({ "skipped: stage 3 failed (cascade)" }, r.s4.errors)
    assert.are.same({ "s2-check", "s1-a", "s1-b", "s3", "s4" }, names(report))
    assert.is_false(report.passed)
  end)

  it("with fail_fast cancels running validators and skips those not started", function()
    local report = v.run({
      { name = "long", run = { "sleep", "100" } },
      { name = "fails", run = { "sh", "-c", "sleep 0.1; exit 1" } },
      { name = "queued", run = { "true" } },
    }, { dir = d }, { fail_fast = true, workers = 2 })
    local r = report.by_name
    assert.are.equal("canceled", r.long.status)
    assert.are.equal("failed", r.fails.status)
    assert.are.equal("skipped", r.queued.status)
    assert.is_true(report.duration < 50)
  end)

  it("bounds concurrency process-wide across runs in po.async tasks", function()
    v.configure { concurrency = 2 }
    local log = d .. "/log"
    local function busy(name)
      return { name = name, run = { "sh", "-c", "echo + >> " .. log .. "; sleep 0.15; echo - >> " .. log } }
    end
    local a = po.async(function() return v.run({ busy "a1", busy "a2", busy "a3" }, { dir = d }) end)
    local b = po.async(function() return v.run({ busy "b1", busy "b2", busy "b3" }, { dir = d }) end)
    assert.is_true(a:wait().passed)
    assert.is_true(b:wait().passed)
    assert.are.equal(2, most_at_once(log))
    assert.are.same({ concurrency = 2, running = 0, waiting = 0 }, v.limits())
    v.configure { concurrency = po.pool.cpu_count() }
  end)

  it("workers caps one run's concurrency", function()
    local log = d .. "/log"
    local list = {}
    for i = 1, 4 do
      list[i] = { name = "w" .. i, run = { "sh", "-c", "echo + >> " .. log .. "; sleep 0.1; echo - >> " .. log } }
    end
    v.configure { concurrency = 8 }
    assert.is_true(v.run(list, { dir = d }, { workers = 1 }).passed)
    assert.are.equal(1, most_at_once(log))
    v.configure { concurrency = po.pool.cpu_count() }
  end)

  it("checks its arguments", function()
    assert.has_error(function() v.run({ { name = "x", run = { "true" } } }, {}, { cascde = true }) end,
      "po.validate.run: unknown option 'cascde'")
    assert.has_error(function() v.run({ { name = "x", run = { "true" } }, { name = "x", run = { "true" } } }, {}) end,
      "po.validate.run: two validators are named 'x'")
    assert.has_error(function() v.run({ { name = "x", run = 5 } }, {}) end,
      "po.validate.run: validators[1] (x): run must be an argv table, a function or { module =, fn = }")
    assert.has_error(function() v.run({ { run = { "true" } } }, {}) end,
      "po.validate.run: validators[1]: name must be a non-empty string")
    assert.has_error(function() v.run({ { name = "x", run = { "true" }, tmeout = 1 } }, {}) end,
      "po.validate.run: validators[1]: unknown field 'tmeout'")
    assert.has_error(function() v.configure { concurrency = 0 } end,
      "po.validate.configure: concurrency must be a whole number of at least 1")
  end)
end)

describe("built-in validators", function()
  local d
  before_each(function() d = tempdir() end)
  after_each(function() os.execute("rm -rf " .. d) end)

  it("syntax checks Lua, C and Python and reports file:line", function()
    write(d .. "/good.lua", "return 1\n")
    write(d .. "/bad.lua", "local x = \nreturn (\n")
    write(d .. "/good.c", "int main(void) { return 0; }\n")
    write(d .. "/bad.c", "int main(void) { return 0 }\n")
    write(d .. "/good.py", "x = 1\n")
    write(d .. "/bad.py", "def f(:\n")
    for _, lang in ipairs { "lua", "c", "python" } do
      local ext = lang == "python" and "py" or lang
      local ok = v.run({ v.syntax { lang = lang } }, { dir = d, file = d .. "/good." .. ext })
      assert.is_true(ok.passed, lang)
      local bad = v.run({ v.syntax { lang = lang } }, { dir = d, file = d .. "/bad." .. ext })
      assert.is_false(bad.passed, lang)
      assert.is_true(#bad.results[1].errors > 0, lang)
    end
    local bad = v.run({ v.syntax { lang = "c" } }, { dir = d, file = d .. "/bad.c" })
    assert.matches("bad%.c:1:", bad.results[1].errors[1])
    assert.is_nil(io.open(d .. "/__pycache__")) -- checking wrote no .pyc
    assert.has_error(function() v.syntax { lang = "cobol" } end,
      "po.validate.syntax: lang must be \"lua\", \"c\" or \"python\" (or give argv), got cobol")
  end)

  it("command passes on exit 0", function()
    local report = v.run({ v.command { argv = { "true" }, name = "t" }, v.command { argv = { "false" }, name = "f" } }, {})
    assert.is_true(report.by_name.t.passed)
    assert.is_false(report.by_name.f.passed)
  end)

  it("parse_test_summary reads busted, ctest, pytest and plain summaries", function()
    assert.are.same({ format = "busted", passed = 12, failed = 1, errors = 2, skipped = 3, total = 18 },
      v.parse_test_summary("...\n12 successes / 1 failure / 2 errors / 3 pending : 0.2 seconds\n"))
    assert.are.same({ format = "ctest", passed = 3, failed = 1, errors = 0, skipped = 0, total = 4 },
      v.parse_test_summary("75% tests passed, 1 tests failed out of 4\n\nTotal Test time (real) =   0.87 sec"))
    assert.are.same({ format = "pytest", passed = 8, failed = 2, errors = 1, skipped = 1, total = 12 },
      v.parse_test_summary("===== 2 failed, 8 passed, 1 skipped, 1 error in 0.12s ====="))
    assert.are.same({ format = "pytest", passed = 3, failed = 0, errors = 0, skipped = 0, total = 3 },
      v.parse_test_summary("3 passed in 0.01s"))
    assert.are.same({ format = "plain", passed = 14, failed = 0, errors = 0, skipped = 0, total = 14 },
      v.parse_test_summary("a 1 passed, 1 failed\n14 passed, 0 failed\n"))
    assert.is_nil(v.parse_test_summary("all good"))
  end)

  it("tests fails on reported failures even with exit 0, and warns without a summary", function()
    local report = v.run({
      v.tests { name = "red", argv = { "echo", "9 passed, 1 failed" } },
      v.tests { name = "green", argv = { "echo", "10 passed, 0 failed" } },
      v.tests { name = "silent", argv = { "true" } },
    }, {})
    local r = report.by_name
    assert.is_false(r.red.passed)
    assert.are.same({ "1 failed, 0 errors (plain)" }, r.red.errors)
    assert.are.equal(1, r.red.details.summary.failed)
    assert.is_true(r.green.passed)
    assert.is_true(r.silent.passed)
    assert.are.same({ "no test summary found in the output" }, r.silent.warnings)
  end)

  it("stats gives median, min, max and MAD", function()
    local s = v.stats { 5, 1, 3, 2, 4 }
    assert.are.equal(3, s.median)
    assert.are.equal(1, s.min)
    assert.are.equal(5, s.max)
    assert.are.equal(1, s.mad)
    assert.are.equal(2.5, v.stats({ 1, 2, 3, 4 }).median)
  end)

  it("compare counts a speedup only when it stands clear of both runs' spread", function()
    local base = { median = 1.0, mad = 0.05 }
    assert.are.equal("faster", (v.compare({ median = 0.5, mad = 0.05 }, base)))
    assert.are.equal("same", (v.compare({ median = 0.85, mad = 0.05 }, base))) -- 0.95 overlaps 0.9
    assert.are.equal("same", (v.compare({ median = 0.95, mad = 0.0 }, base)))
    assert.are.equal("slower", (v.compare({ median = 1.5, mad = 0.05 }, base)))
    assert.are.equal("same", (v.compare({ median = 0.995, mad = 0 }, { median = 1, mad = 0 }))) -- 1% floor
    local verdict, speedup = v.compare({ median = 200, mad = 1 }, { median = 100, mad = 1 }, { higher_is_better = true })
    assert.are.equal("faster", verdict)
    assert.are.equal(2, speedup)
  end)

  it("compare with samples on both sides decides by Mann-Whitney and returns the speedup's interval", function()
    local base = v.stats { 1.00, 1.02, 0.99, 1.01, 1.03, 0.98, 1.00, 1.01 }
    local half = v.stats { 0.50, 0.51, 0.49, 0.52, 0.50, 0.48, 0.51, 0.50 }
    local verdict, speedup, info = v.compare(half, base)
    assert.are.equal("faster", verdict)
    assert.is_true(speedup > 1.9 and speedup < 2.1, tostring(speedup))
    assert.are.equal("mann-whitney", info.rule)
    assert.is_true(info.ci_low > 1.8 and info.ci_low <= speedup and speedup <= info.ci_high and info.ci_high < 2.2)
    assert.is_true(info.p < 0.01)
    assert.are.equal(8, info.n_candidate)
    -- The same samples are "same", with an interval around 1; a throughput
    -- twice as high is "faster" with higher_is_better.
    local same, s1, i1 = v.compare(v.stats(base.samples), base)
    assert.are.equal("same", same)
    assert.is_true(i1.ci_low <= 1 and s1 == 1 and i1.ci_high >= 1)
    assert.are.equal("faster", (v.compare(base, half, { higher_is_better = true })))
    assert.are.equal("slower", (v.compare(base, half)))
    -- A 5% speedup below min_effect = 0.1 is not "faster", however clear.
    local five = {}
    for i, x in ipairs(base.samples) do
      five[i] = x / 1.05
    end
    assert.are.equal("faster", (v.compare(v.stats(five), base, { min_effect = 0.01 })))
    assert.are.equal("same", (v.compare(v.stats(five), base, { min_effect = 0.1 })))
    -- Figures without samples fall back to the band rule, with no interval.
    local _, _, band = v.compare({ median = 0.5, mad = 0.01 }, { median = 1, mad = 0.01 })
    assert.are.equal("band", band.rule)
    assert.is_nil(band.ci_low)
  end)

  it("benchmark's measure takes one measurement, pinned to a CPU when asked", function()
    local b = v.benchmark { argv = { "echo", "{dir}" }, metric = function(r) return #r.stdout end }
    assert.are.equal(#"/tmp\n", b.measure({ dir = "/tmp" }))
    local cpus = po.cpus()
    assert.are.equal(#"/tmp\n", b.measure({ dir = "/tmp" }, { cpu = cpus[#cpus] }))
    local value, err, code = v.benchmark({ argv = { "false" } }).measure({ dir = "/tmp" })
    assert.is_nil(value)
    assert.matches("exited with 1", err)
    assert.are.equal("EBENCH", code)
  end)

  it("benchmark measures repeats beside a baseline and judges them", function()
    local report = v.run({
      v.benchmark { name = "quick", argv = { "true" }, repeats = 3, warmup = 1,
                    baseline = { argv = { "sleep", "0.05" } } },
      v.benchmark { name = "sluggish", argv = { "sleep", "0.05" }, repeats = 3,
                    baseline = { median = 0.001, mad = 0 } },
      v.benchmark { name = "metric", argv = { "echo", "42" }, repeats = 2,
                    metric = function(r) return tonumber(r.stdout) end },
      v.benchmark { name = "broken", argv = { "false" } },
    }, {})
    local r = report.by_name
    assert.is_true(r.quick.passed)
    assert.are.equal("faster", r.quick.details.verdict)
    assert.are.equal(3, r.quick.details.n)
    assert.are.equal(3, r.quick.details.baseline.n)
    assert.is_true(r.quick.details.speedup > 1)
    assert.is_false(r.sluggish.passed)
    assert.are.equal("slower", r.sluggish.details.verdict)
    assert.are.equal(42, r.metric.details.median)
    assert.are.equal(0, r.metric.details.mad)
    assert.is_false(r.broken.passed)
    assert.matches("exited with 1", r.broken.errors[1])
  end)

  it("pattern reports forbidden patterns and secrets as file:line, never the secret", function()
    write(d .. "/a.lua", "local ok = 1\n-- TODO: remove\nlocal key = \"AKIAABCDEFGHIJKLMNOP\"\n")
    write(d .. "/b.txt", "password = 'correcthorse'\n")
    write(d .. "/clean.txt", "nothing here\n")
    local report = v.run({ v.pattern { deny = { "TODO", { pattern = "os%.execute", message = "no shelling out" } } } },
      { dir = d })
    local r = report.results[1]
    assert.is_false(r.passed)
    assert.are.same({
      d .. "/a.lua:2: forbidden pattern 'TODO'",
      d .. "/a.lua:3: possible hard-coded secret (AWS access key)",
      d .. "/b.txt:1: possible hard-coded secret (password)",
    }, r.errors)
    assert.are.equal(3, r.details.files)
    for _, e in ipairs(r.errors) do
      assert.not_matches("AKIAABCD", e)
      assert.not_matches("correcthorse", e)
    end
    local clean = v.run({ v.pattern { deny = { "TODO" } } }, { file = d .. "/clean.txt" })
    assert.is_true(clean.passed)
    assert.has_error(function() v.pattern { deny = { "[" } } end, "po.validate.pattern: deny[1] must be a valid Lua pattern")
  end)

  it("lint is skipped with a warning when the tool is absent, and reports file:line otherwise", function()
    local linter = d .. "/fake-lint"
    write(linter, "#!/bin/sh\necho \"$1:3: warning: unused variable\"\nexit 1\n")
    os.execute("chmod +x " .. linter)
    write(d .. "/x.c", "int x;\n")
    local report = v.run({
      v.lint { name = "absent", argv = { "no-such-linter-xyz", "{file}" } },
      v.lint { name = "fake", argv = { linter, "{file}" } },
    }, { dir = d, file = d .. "/x.c" })
    local r = report.by_name
    assert.are.equal("skipped", r.absent.status)
    assert.is_true(r.absent.passed)
    assert.are.same({ "lint: no-such-linter-xyz is not installed; skipped" }, r.absent.warnings)
    assert.are.equal("failed", r.fake.status)
    assert.are.same({ d .. "/x.c:3: warning: unused variable" }, r.fake.errors)
  end)

  it("levels add validators: basic, standard, strict, paranoid", function()
    local config = { lang = "lua", tests = { "true" }, benchmark = { argv = { "true" }, repeats = 1 },
                     deny = { "TODO" } }
    local function level_names(name)
      local out = {}
      for i, x in ipairs(v.level(name, config)) do
        out[i] = x.name .. "@" .. (x.stage or 1)
      end
      return out
    end
    assert.are.same({ "syntax@1" }, level_names("basic"))
    assert.are.same({ "syntax@1", "tests@2" }, level_names("standard"))
    assert.are.same({ "syntax@1", "tests@2", "benchmark@3" }, level_names("strict"))
    assert.are.same({ "syntax@1", "tests@2", "benchmark@3", "pattern@1", "lint@1" }, level_names("paranoid"))
    write(d .. "/ok.lua", "return 1\n")
    local report = v.run(v.level("paranoid", config), { dir = d, file = d .. "/ok.lua" }, { cascade = true })
    assert.is_true(report.passed)
    assert.has_error(function() v.level("extreme", config) end,
      "po.validate.level: level must be basic, standard, strict or paranoid, got extreme")
    assert.has_error(function() v.level("standard", { lang = "lua" }) end, "po.validate.level: standard needs tests = argv")
  end)
end)
