-- The cycle collector: records, statistics (an empty collector too),
-- ENOCYCLE and every other error path, trimming at max_history, persistence
-- across processes and several processes appending to one store, the
-- exports (CSV read back by Python's csv module), global()/set_global().
local po = require "poengine"
local proc = require "tests.tools.proc"
local q = proc.quote

local raises = require("tests.tools.expect").raises

local tempdir, rmdir = proc.tempdir, proc.rmdir

local function read(path)
  local f = assert(io.open(path, "rb"))
  local s = f:read("*a")
  f:close()
  return s
end

-- Runs Lua code in another poengine process; returns status, out, err.
local function run_child(code)
  local path = proc.tempfile(code, ".lua")
  local status, out, err = proc.poengine(q(path))
  os.remove(path)
  return status, out, err
end

-- A cycle with known numbers.
local function cycle(col, id, opts)
  opts = opts or {}
  local rec = col:start_cycle(id, opts.metadata)
  for _ = 1, opts.hits or 0 do
    assert(col:record_llm_call(id, { cache_hit = true, tokens_in = 100, tokens_out = 50, cost = 0.02,
      provider = "openai" }))
  end
  for _ = 1, opts.misses or 0 do
    assert(col:record_llm_call(id, { cache_hit = false, tokens_in = 10, tokens_out = 5, cost = 0.01, latency = 0.5,
      provider = "anthropic" }))
  end
  if opts.validation then assert(col:record_validation(id, opts.validation, opts.validations)) end
  if opts.files then assert(col:record_file_operation(id, opts.files)) end
  if opts.score then assert(col:record_score(id, opts.score, opts.best_score)) end
  if opts.sleep then po.sleep(opts.sleep) end
  local done = assert(col:end_cycle(id, opts.success ~= false, opts.error))
  assert.are.equal(rec, done)
  return done
end

local empty_statistics = {
  cycle_stats = { mean = 0, median = 0, min = 0, max = 0, stdev = 0, p90 = 0, p99 = 0 },
  cache_stats = { total_llm_calls = 0, cache_hits = 0, cache_misses = 0, hit_rate = 0, api_reduction = 0,
    tokens_saved = 0, cost_saved = 0 },
  validation_stats = { mean_validation_time = 0, median_validation_time = 0, total_validations = 0 },
  overall_stats = { total_cycles = 0, successful_cycles = 0, failed_cycles = 0, success_rate = 0, active_cycles = 0,
    total_file_operations = 0 },
}

describe("po.metrics.collector", function()
  it("gives an empty collector's statistics with every key, zeros", function()
    assert.are.same(empty_statistics, po.metrics.collector():statistics())
    local dir = tempdir()
    local col = assert(po.metrics.collector { path = dir })
    assert.are.same(empty_statistics, col:statistics())
    assert.are.same({}, col:recent())
    assert.is_nil(col:cycles()())
    col:close()
    rmdir(dir)
  end)

  it("records a cycle with every field", function()
    local col = po.metrics.collector { name = "spec_fields" }
    local before = po.time()
    local rec = cycle(col, "c1", { metadata = { strategy = "greedy", n = 3 }, hits = 2, misses = 1, validation = 1.5,
      validations = 3, files = 4, score = 0.8, best_score = 0.9, sleep = 0.01 })
    local keys = {}
    for k in pairs(rec) do keys[#keys + 1] = k end
    table.sort(keys)
    assert.are.same({ "best_score", "cost", "cost_saved", "cycle_id", "duration", "end_time", "file_operations",
      "llm_cache_hits", "llm_cache_misses", "llm_calls", "metadata", "score", "start_time", "success",
      "tokens_in", "tokens_out", "tokens_saved", "validation_count", "validation_time" }, keys)
    assert.are.equal("c1", rec.cycle_id)
    assert(rec.start_time >= before - 1 and rec.end_time >= rec.start_time)
    assert(rec.duration >= 0.01)
    assert.are.equal(3, rec.llm_calls)
    assert.are.equal(2, rec.llm_cache_hits)
    assert.are.equal(1, rec.llm_cache_misses)
    assert.are.equal(10, rec.tokens_in)
    assert.are.equal(5, rec.tokens_out)
    assert.are.equal(300, rec.tokens_saved)
    assert.are.equal(0.01, rec.cost)
    assert.are.equal(0.04, rec.cost_saved)
    assert.are.equal(1.5, rec.validation_time)
    assert.are.equal(3, rec.validation_count)
    assert.are.equal(4, rec.file_operations)
    assert.is_true(rec.success)
    assert.is_nil(rec.error)
    assert.are.equal(0.8, rec.score)
    assert.are.equal(0.9, rec.best_score)
    -- the stored record reads back the same
    local back = col:recent(1)[1]
    assert.are.same(rec, back)
    -- and the primitives saw it
    local seen = {}
    for _, m in ipairs(po.metrics.collect()) do
      if m.labels.collector == "spec_fields" then
        local key = m.name .. (m.labels.cache or m.labels.result or m.labels.direction or "")
        seen[key] = (seen[key] or 0) + (m.value or m.count) -- summed over providers
      end
    end
    -- (a counter's family name has no _total; its samples do)
    assert.are.equal(1, seen.po_cyclessuccess)
    assert.are.equal(2, seen.po_llm_callshit)
    assert.are.equal(1, seen.po_llm_callsmiss)
    assert.are.equal(10, seen.po_llm_tokensin)
    assert.are.equal(1, seen.po_llm_latency_seconds)
    assert.are.equal(1, seen.po_cycle_duration_seconds)
    assert.are.equal(0, seen.po_cycles_active)
  end)

  it("computes statistics over the history", function()
    local col = po.metrics.collector()
    cycle(col, 1, { hits = 3, misses = 1, validation = 2, validations = 2, files = 1 })
    cycle(col, 2, { misses = 4, validation = 4, files = 2 })
    cycle(col, 3, { hits = 1, success = false, error = "tests failed", files = 3 })
    cycle(col, 4, {})
    col:start_cycle(5)
    local s = col:statistics()
    assert.are.same({ total_llm_calls = 9, cache_hits = 4, cache_misses = 5, hit_rate = 4 / 9,
      api_reduction = 400 / 9, tokens_saved = 600, cost_saved = 0.08 }, s.cache_stats)
    assert.are.same({ mean_validation_time = 3, median_validation_time = 3, total_validations = 3 },
      s.validation_stats)
    assert.are.same({ total_cycles = 4, successful_cycles = 3, failed_cycles = 1, success_rate = 0.75,
      active_cycles = 1, total_file_operations = 6 }, s.overall_stats)
    -- cycle_stats: over the successful cycles' durations, as recorded
    local d = {}
    for rec in col:cycles() do
      if rec.success then d[#d + 1] = rec.duration end
    end
    table.sort(d)
    assert.are.equal(3, #d)
    local mean = (d[1] + d[2] + d[3]) / 3
    local sd = math.sqrt(((d[1] - mean) ^ 2 + (d[2] - mean) ^ 2 + (d[3] - mean) ^ 2) / 2)
    assert.are.same({ mean = mean, median = d[2], min = d[1], max = d[3], stdev = sd, p90 = d[3], p99 = d[3] },
      s.cycle_stats)
  end)

  it("returns ENOCYCLE for an unknown cycle id", function()
    local col = po.metrics.collector()
    local calls = {
      { "record_llm_call", { cache_hit = true } },
      { "record_validation", 1 },
      { "record_file_operation" },
      { "record_score", 1 },
      { "end_cycle", true },
    }
    for _, c in ipairs(calls) do
      local ok, err, code = col[c[1]](col, "nope", c[2])
      assert.is_nil(ok)
      assert.are.equal("ENOCYCLE", code)
      assert.are.equal("col:" .. c[1] .. ": no active cycle 'nope'", err)
    end
    cycle(col, 7, {})
    local ok, err, code = col:end_cycle(7, true)
    assert.is_nil(ok)
    assert.are.equal("col:end_cycle: no active cycle 7", err)
    assert.are.equal("ENOCYCLE", code)
  end)

  it("raises on programmer errors", function()
    local col = po.metrics.collector()
    col:start_cycle("a")
    raises("col:start_cycle: cycle a is already active", col.start_cycle, col, "a")
    raises("col:start_cycle: id must be a string or a number, got table", col.start_cycle, col, {})
    raises("col:start_cycle: id must be a string or a number, got number", col.start_cycle, col, 0 / 0)
    raises("col:start_cycle: metadata must be a table or nil, got string", col.start_cycle, col, "b", "x")
    raises("col:start_cycle: metadata.f is a function (only nil, booleans, numbers, strings and tables are stored)",
      col.start_cycle, col, "b", { f = print })
    local loop = {}
    loop.self = loop
    raises("col:start_cycle: metadata.self refers to itself", col.start_cycle, col, "b", loop)
    raises("col:record_llm_call: unknown field 'tokens'", col.record_llm_call, col, "a", { tokens = 1 })
    raises("col:record_llm_call: call must be a table, got string", col.record_llm_call, col, "a", "x")
    raises("col:record_llm_call: tokens_in must be a finite number >= 0, got -1", col.record_llm_call, col, "a",
      { tokens_in = -1 })
    raises("col:record_llm_call: cost must be a finite number >= 0, got x", col.record_llm_call, col, "a",
      { cost = "x" })
    raises("col:record_llm_call: provider must be a string, got number", col.record_llm_call, col, "a",
      { provider = 1 })
    raises("col:record_validation: duration must be a finite number >= 0, got nil", col.record_validation, col, "a")
    raises("col:record_validation: count must be a finite number >= 0", col.record_validation, col, "a", 1, -2)
    raises("col:record_file_operation: n must be a finite number >= 0", col.record_file_operation, col, "a", "2")
    raises("col:record_score: score must be a number or a list of finite numbers", col.record_score, col, "a", "high")
    raises("col:record_score: best_score must be a number or a list of finite numbers", col.record_score, col, "a",
      { 1, 2 }, { 1, 0 / 0 })
    raises("col:end_cycle: id must be a string or a number, got nil", col.end_cycle, col)
    raises("col:recent: n must be a whole number >= 0", col.recent, col, -1)
    -- metadata changed into something unstorable before the end: raised, the cycle stays active
    local rec = col:start_cycle("m", { ok = true })
    rec.metadata.bad = coroutine.create(print)
    raises("col:end_cycle: metadata.bad is a thread", col.end_cycle, col, "m", true)
    rec.metadata.bad = nil
    assert(col:end_cycle("m", true))

    raises("po.metrics.collector: unknown option 'max_histroy'", po.metrics.collector, { max_histroy = 1 })
    raises("po.metrics.collector: options must be a table, got string", po.metrics.collector, "x")
    raises("po.metrics.collector: max_history must be a whole number >= 1, got 0", po.metrics.collector,
      { max_history = 0 })
    raises("po.metrics.collector: max_history must be a whole number >= 1, got 1.5", po.metrics.collector,
      { max_history = 1.5 })
    raises("po.metrics.collector: path must be a directory name or nil", po.metrics.collector, { path = 1 })
    raises("po.metrics.collector: name must be a non-empty string", po.metrics.collector, { name = "" })
    raises("po.metrics.collector: durability must be 'none', 'batch' or 'full', got fast", po.metrics.collector,
      { durability = "fast" })
    raises("col:export: format must be 'json', 'jsonl' or 'csv', got xml", col.export, col, "xml", "/tmp/x")
    raises("col:export: path must be a file name", col.export, col, "csv")
  end)

  it("returns a runtime failure when the store cannot be opened", function()
    local col, err, code = po.metrics.collector { path = "/proc/self/cannot/be/here" }
    assert.is_nil(col)
    assert.are.equal("EPERM", code)
    assert.matches("^po.store.log: cannot create the store directory /proc/self/cannot/be/here", err)
  end)

  it("trims the oldest records at max_history, in memory and in the store", function()
    local dir = tempdir()
    for _, opts in ipairs { { max_history = 3 }, { max_history = 3, path = dir } } do
      local col = assert(po.metrics.collector(opts))
      for i = 1, 7 do cycle(col, i, { files = i }) end
      assert.are.equal(3, col:count())
      local ids = {}
      for rec in col:cycles() do ids[#ids + 1] = rec.cycle_id end
      assert.are.same({ 5, 6, 7 }, ids)
      assert.are.equal(18, col:statistics().overall_stats.total_file_operations)
      local recent = col:recent(2)
      assert.are.same({ 6, 7 }, { recent[1].cycle_id, recent[2].cycle_id })
      assert.are.equal(3, #col:recent(10))
      assert.are.same({}, col:recent(0))
      col:close()
    end
    rmdir(dir)
  end)

  it("iterates long histories oldest first, across read batches", function()
    local dir = tempdir()
    for _, opts in ipairs { { max_history = 600 }, { max_history = 600, path = dir } } do
      local col = assert(po.metrics.collector(opts))
      for i = 1, 700 do cycle(col, i, {}) end
      local n, expect = 0, 101
      for rec in col:cycles() do
        assert.are.equal(expect, rec.cycle_id)
        expect, n = expect + 1, n + 1
      end
      assert.are.equal(600, n)
      assert.are.equal(600, col:statistics().overall_stats.total_cycles)
      assert.is_true(col:clear())
      assert.are.equal(0, col:count())
      assert.are.same(empty_statistics, col:statistics())
      col:close()
    end
    rmdir(dir)
  end)

  it("keeps its history across processes", function()
    local dir = tempdir()
    local status, _, err = run_child(([[
      local col = assert(po.metrics.collector { path = %q, durability = "full" })
      for i = 1, 5 do
        col:start_cycle("child-" .. i, { round = i, tags = { "a", "b" } })
        col:record_llm_call("child-" .. i, { cache_hit = i %% 2 == 0, tokens_in = 3, tokens_out = 4, cost = 0.5 })
        col:end_cycle("child-" .. i, i ~= 5, i == 5 and "it broke" or nil)
      end
    ]]):format(dir))
    assert.are.equal(0, status, err)
    local col = assert(po.metrics.collector { path = dir })
    assert.are.equal(5, col:count())
    local recs = col:recent(5)
    assert.are.equal("child-1", recs[1].cycle_id)
    assert.are.same({ round = 1, tags = { "a", "b" } }, recs[1].metadata)
    assert.are.equal("it broke", recs[5].error)
    assert.is_false(recs[5].success)
    local s = col:statistics()
    assert.are.equal(4, s.overall_stats.successful_cycles)
    assert.are.equal(2, s.cache_stats.cache_hits)
    assert.are.equal(14, s.cache_stats.tokens_saved)
    -- this process appends to the same history
    cycle(col, "parent", {})
    assert.are.equal(6, col:count())
    col:close()
    -- a reopened collector with a smaller max_history trims at its next cycle
    col = assert(po.metrics.collector { path = dir, max_history = 2 })
    assert.are.equal(6, col:count())
    cycle(col, "last", {})
    assert.are.equal(2, col:count())
    assert.are.equal("parent", col:recent(2)[1].cycle_id)
    col:close()
    col:close() -- twice is fine
    rmdir(dir)
  end)

  it("keeps a run record (direction and more) beside the cycles, in memory and in the store", function()
    local col = po.metrics.collector()
    assert.are.same({}, col:run())
    assert.is_true(col:set_run { direction = "min", final = { verdict = "same", speedup = 1.02 } })
    assert.is_true(col:set_run { chain_speedup = 5 })
    assert.are.same({ direction = "min", final = { verdict = "same", speedup = 1.02 }, chain_speedup = 5 }, col:run())
    raises("col:set_run: direction must be 'min' or 'max', got down", col.set_run, col, { direction = "down" })
    raises("col:set_run: run.f is a function (only nil, booleans, numbers, strings and tables are stored)",
      col.set_run, col, { f = print })
    raises("po.metrics.collector: direction must be 'min' or 'max', got up", po.metrics.collector, { direction = "up" })
    col:clear()
    assert.are.same({}, col:run())

    local dir = tempdir()
    local status, _, err = run_child(([[
      local col = assert(po.metrics.collector { path = %q, direction = "min" })
      col:set_run { chain_speedup = 2.5 }
      col:close()
    ]]):format(dir))
    assert.are.equal(0, status, err)
    col = assert(po.metrics.collector { path = dir })
    assert.are.same({ direction = "min", chain_speedup = 2.5 }, col:run())
    col:close()
    rmdir(dir)
  end)

  it("annotates an active cycle's metadata", function()
    local col = po.metrics.collector()
    col:start_cycle("a", { task = "t" })
    assert.is_true(col:annotate("a", { outcomes = { proposed = 4, failed = { build = 1 } } }))
    col:start_cycle("b")
    assert.is_true(col:annotate("b", { direction = "min" }))
    col:end_cycle("a", true)
    col:end_cycle("b", true)
    local recs = col:recent(2)
    assert.are.same({ task = "t", outcomes = { proposed = 4, failed = { build = 1 } } }, recs[1].metadata)
    assert.are.same({ direction = "min" }, recs[2].metadata)
    local ok, msg, code = col:annotate("a", {})
    assert.is_nil(ok)
    assert.are.equal("col:annotate: no active cycle 'a'", msg)
    assert.are.equal("ENOCYCLE", code)
    raises("col:annotate: fields must be a table, got string", col.annotate, col, "a", "x")
  end)

  it("lets several processes append to one store at once", function()
    local dir = tempdir()
    local script = proc.tempfile(([[
      local who = ...
      local col = assert(po.metrics.collector { path = %q, max_history = 100000 })
      for i = 1, 60 do
        col:start_cycle(who .. ":" .. i)
        col:record_file_operation(who .. ":" .. i)
        assert(col:end_cycle(who .. ":" .. i, true))
      end
    ]]):format(dir), ".lua")
    local cmd = {}
    for p = 1, 4 do
      cmd[p] = q(proc.bin) .. " " .. q(script) .. " p" .. p .. " & "
    end
    local status, _, err = proc.sh(table.concat(cmd) .. "s=0; for j in 1 2 3 4; do wait %$j || s=1; done; exit $s")
    os.remove(script)
    assert.are.equal(0, status, err)
    local col = assert(po.metrics.collector { path = dir, max_history = 100000 })
    assert.are.equal(240, col:count())
    local next_of = {}
    for rec in col:cycles() do
      local who, i = rec.cycle_id:match("^(p%d):(%d+)$")
      i = tonumber(i)
      assert.are.equal((next_of[who] or 0) + 1, i) -- each process's cycles in its own order
      next_of[who] = i
    end
    assert.are.same({ p1 = 60, p2 = 60, p3 = 60, p4 = 60 }, next_of)
    assert.are.equal(240, col:statistics().overall_stats.total_file_operations)
    col:close()
    rmdir(dir)
  end)

  it("refuses a record written in an unknown layout version", function()
    local dir = tempdir()
    local log = assert(po.store.log(dir, "cycles"))
    assert(log:append("\9" .. ("\0"):rep(200)))
    log:close()
    local col = assert(po.metrics.collector { path = dir })
    raises("po.metrics.collector: a record has layout version 9; this poengine reads version 1",
      col.statistics, col)
    raises("layout version 9", col.recent, col, 1)
    local iter = col:cycles()
    raises("layout version 9", iter)
    col:close()
    rmdir(dir)
  end)

  describe("exports", function()
    local dir, col
    local nasty_id = 'id, with "quotes"\nand a new line'
    local nasty_meta = { note = 'commas, "quotes"\nand\r\nnew lines', list = { 1, 2 } }

    before_each(function()
      dir = tempdir()
      col = assert(po.metrics.collector { path = dir .. "/store" })
      cycle(col, nasty_id, { metadata = nasty_meta, hits = 1, misses = 1, score = 0.5, success = false,
        error = 'failed: "x",\ny' })
      cycle(col, 2, { files = 2 })
    end)

    after_each(function()
      col:close()
      rmdir(dir)
    end)

    local rfc3339 = "^%d%d%d%d%-%d%d%-%d%dT%d%d:%d%d:%d%d%.%d%d%dZ$"

    it("writes CSV per RFC 4180 that a CSV parser reads back exactly", function()
      local path = dir .. "/cycles.csv"
      assert.is_true(col:export("csv", path))
      local text = read(path)
      assert.matches("^cycle_id,start_time,end_time,duration,success,error,", text)
      assert.matches("\r\n$", text)
      local reader = proc.tempfile([[
import csv, json, sys
with open(sys.argv[1], newline="") as f:
    rows = list(csv.reader(f))
print(json.dumps(rows))
]], ".py")
      local status, out, err = proc.sh("/usr/bin/python3 " .. q(reader) .. " " .. q(path))
      os.remove(reader)
      assert.are.equal(0, status, err)
      local rows = assert(po.json.decode(out))
      assert.are.equal(3, #rows)
      local header, first, second = rows[1], {}, {}
      for i, name in ipairs(header) do
        first[name], second[name] = rows[2][i], rows[3][i]
      end
      assert.are.equal(nasty_id, first.cycle_id)
      assert.are.equal('failed: "x",\ny', first.error)
      assert.are.same(nasty_meta, po.json.decode(first.metadata))
      assert.are.equal("false", first.success)
      assert.are.equal("0.5", first.score)
      assert.are.equal("", first.best_score)
      assert.are.equal("1", first.llm_cache_hits)
      assert.matches(rfc3339, first.start_time)
      assert.matches(rfc3339, first.end_time)
      assert.are.equal("2", second.cycle_id)
      assert.are.equal("2", second.file_operations)
      assert.are.equal("", second.metadata)
      assert.are.equal("", second.error)
    end)

    it("writes a JSON document and JSON lines with RFC 3339 times", function()
      local path = dir .. "/cycles.json"
      assert.is_true(col:export("json", path))
      local doc = assert(po.json.decode(read(path)))
      assert.matches(rfc3339, doc.exported_at)
      assert.are.same(col:statistics(), doc.statistics)
      assert.are.equal(2, #doc.cycles)
      local c = doc.cycles[1]
      assert.are.equal(nasty_id, c.cycle_id)
      assert.are.same(nasty_meta, c.metadata)
      assert.matches(rfc3339, c.start_time)
      assert.are.equal(po.json.null, c.best_score)
      assert.are.equal(po.json.null, doc.cycles[2].metadata)
      local rec = col:recent(2)[1]
      assert.are.equal(rec.duration, c.duration)
      local y, mo, d, h, mi, s, ms = c.start_time:match("^(%d+)%-(%d+)%-(%d+)T(%d+):(%d+):(%d+)%.(%d+)Z$")
      local unix = os.time { year = y, month = mo, day = d, hour = h, min = mi, sec = s, isdst = false }
        - os.time { year = 1970, month = 1, day = 1, hour = 0, isdst = false } + ms / 1000
      assert(math.abs(unix - rec.start_time) < 0.002, "start_time is the record's, in UTC")

      local lines = dir .. "/cycles.jsonl"
      assert.is_true(col:export("jsonl", lines))
      local n = 0
      for line in io.lines(lines) do
        n = n + 1
        assert.are.same(doc.cycles[n], assert(po.json.decode(line)))
      end
      assert.are.equal(2, n)
    end)

    it("lets two processes export to one path at once, each whole, no temporary file left", function()
      local store = dir .. "/shared-store"
      local writer = assert(po.metrics.collector { path = store })
      for i = 1, 20 do
        cycle(writer, i, { hits = 1 })
      end
      writer:close()
      local path = dir .. "/out/shared.jsonl"
      assert(os.execute("mkdir " .. q(dir .. "/out")) == 0)
      local script = proc.tempfile(([[
        local po = require "poengine"
        local col = assert(po.metrics.collector { path = %q })
        for _ = 1, 40 do
          assert(col:export("jsonl", %q))
        end
        col:close()
      ]]):format(store, path), ".lua")
      local a = po.run { argv = { proc.bin, script } }
      local b = po.run { argv = { proc.bin, script } }
      for _, r in ipairs { a:wait(), b:wait() } do
        assert.are.equal("ok", r.status, r.stderr)
      end
      os.remove(script)
      assert.are.equal(20, select(2, read(path):gsub("\n", "")))
      local p = assert(io.popen("ls -A " .. q(dir .. "/out")))
      assert.are.equal("shared.jsonl\n", p:read("*a"))
      p:close()
    end)

    it("returns EIO when the file cannot be written", function()
      local ok, err, code = col:export("csv", dir .. "/missing/dir/x.csv")
      assert.is_nil(ok)
      assert.are.equal("EIO", code)
      assert.matches("^col:export: .*No such file or directory", err)
    end)

    it("writes an empty history as a header, an empty list, nothing", function()
      local empty = po.metrics.collector()
      assert.is_true(empty:export("csv", dir .. "/e.csv"))
      assert.is_true(empty:export("json", dir .. "/e.json"))
      assert.is_true(empty:export("jsonl", dir .. "/e.jsonl"))
      assert.are.equal(1, select(2, read(dir .. "/e.csv"):gsub("\r\n", "")))
      assert.are.same({}, assert(po.json.decode(read(dir .. "/e.json"))).cycles)
      assert.are.equal("", read(dir .. "/e.jsonl"))
    end)
  end)

  it("has a global collector that set_global replaces", function()
    local g = po.metrics.global()
    assert.are.equal(g, po.metrics.global())
    cycle(g, "global-1", {})
    local mine = po.metrics.collector { max_history = 5 }
    po.metrics.set_global(mine)
    assert.are.equal(mine, po.metrics.global())
    raises("po.metrics.set_global: col must be a collector, got table", po.metrics.set_global, {})
    raises("po.metrics.set_global: col must be a collector, got nil", po.metrics.set_global)
    po.metrics.set_global(g)
    assert.are.equal(1, po.metrics.global():count())
  end)
end)
