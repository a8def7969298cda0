-- po.metrics primitives: counters, gauges, histograms (percentiles within 1%
-- of the exact sorted values), timers, the FFI fast path inside poengine,
-- from stock luajit and without FFI, the exposition formats checked by
-- promtool and by an OpenMetrics parser, and every error path.
local po = require "poengine"
local proc = require "tests.tools.proc"
local q = proc.quote

local metrics = po.metrics

local raises = require("tests.tools.expect").raises

-- Runs Lua code in a fresh poengine (an empty registry); returns status, out, err.
local function run_child(code, env)
  local path = proc.tempfile(code, ".lua")
  local status, out, err = proc.sh((env or "") .. " " .. q(proc.bin) .. " " .. q(path))
  os.remove(path)
  return status, out, err
end

local function exact_percentile(sorted, p)
  local rank = math.ceil(p * #sorted / 100)
  if rank < 1 then rank = 1 end
  return sorted[rank]
end

describe("po.metrics", function()
  it("has the documented API and uses ffi.C inside poengine", function()
    local names = {}
    for k in pairs(metrics) do names[#names + 1] = k end
    table.sort(names)
    assert.are.same({ "collect", "collector", "counter", "existing_global", "expose", "fast_path", "gauge", "global",
      "histogram", "set_global", "timer" }, names)
    assert.are.equal("ffi.C", metrics.fast_path)
  end)

  describe("counters", function()
    it("count up by 1 or by n, shared by name and labels", function()
      local c = metrics.counter("spec_requests_total", { help = "requests", labels = { code = 200, path = "/" } })
      c:inc()
      c:inc(2)
      c:inc(0.5)
      assert.are.equal(3.5, c:value())
      local same = metrics.counter("spec_requests", { labels = { path = "/", code = "200" } })
      assert.are.equal(c, same)
      same:inc()
      assert.are.equal(4.5, c:value())
      local other = metrics.counter("spec_requests", { labels = { path = "/x", code = "200" } })
      assert.are_not.equal(c, other)
      assert.are.equal(0, other:value())
      local info = c:info()
      assert.are.equal("spec_requests", info.name)
      assert.are.equal("counter", info.type)
      assert.are.equal("requests", info.help)
      assert.are.same({ code = "200", path = "/" }, info.labels)
      assert.are.same({ "code", "path" }, info.label_names)
      assert.are.equal('counter spec_requests{code=200,path=/}', tostring(c))
    end)

    it("refuse to go down or to take a non-number", function()
      local c = metrics.counter("spec_refuse_total")
      raises("counter:inc: a counter only goes up by a finite amount >= 0, got -1", c.inc, c, -1)
      raises("counter:inc: a counter only goes up", c.inc, c, 0 / 0)
      raises("counter:inc: a counter only goes up", c.inc, c, math.huge)
      raises("counter:inc: the value must be a number, got string", c.inc, c, "1")
      assert.are.equal(0, c:value())
    end)

    it("count exactly in a tight loop (the JIT-compiled FFI path)", function()
      local c = metrics.counter("spec_loop_total")
      for _ = 1, 1000000 do c:inc() end
      assert.are.equal(1000000, c:value())
    end)
  end)

  describe("gauges", function()
    it("set and add", function()
      local g = metrics.gauge("spec_temperature", { help = "t", unit = "celsius" })
      assert.are.equal("spec_temperature_celsius", g:info().name)
      g:set(20)
      g:add(1.5)
      g:add(-3)
      assert.are.equal(18.5, g:value())
      g:set(-math.huge)
      assert.are.equal(-math.huge, g:value())
      raises("gauge:set: the value must not be NaN", g.set, g, 0 / 0)
      raises("gauge:add: the value must not be NaN", g.add, g, 0 / 0)
      raises("gauge:set: the value must be a number, got nil", g.set, g)
      raises("gauge:add: the value must be a number, got table", g.add, g, {})
    end)
  end)

  describe("histograms", function()
    it("give percentiles within 1% of the exact sorted values", function()
      math.randomseed(42)
      local h = metrics.histogram("spec_latency", { help = "latency", unit = "seconds" })
      local values = {}
      for i = 1, 20000 do
        local v = 10 ^ (-5 + 7 * math.random()) -- 10 us .. 100 s
        values[i] = v
        h:observe(v)
      end
      table.sort(values)
      for _, p in ipairs { 0, 1, 10, 25, 50, 75, 90, 95, 99, 99.9, 100 } do
        local want = exact_percentile(values, p)
        local got = h:percentile(p)
        assert(math.abs(got - want) / want <= 0.01, ("p%g: got %.17g, exact %.17g"):format(p, got, want))
      end
      local s = h:snapshot()
      assert.are.equal(20000, s.count)
      assert.are.equal(values[1], s.min)
      assert.are.equal(values[#values], s.max)
      local sum = 0
      for _, v in ipairs(values) do sum = sum + v end
      assert(math.abs(s.sum - sum) <= 1e-9 * sum)
      assert(math.abs(s.mean - sum / 20000) <= 1e-9 * sum)
      for key, p in pairs { p50 = 50, p90 = 90, p99 = 99 } do
        local want = exact_percentile(values, p)
        assert(math.abs(s[key] - want) / want <= 0.01, key)
      end
    end)

    it("snapshot an empty histogram as zeros", function()
      local h = metrics.histogram("spec_empty")
      assert.are.same({ count = 0, sum = 0, min = 0, max = 0, mean = 0, p50 = 0, p90 = 0, p99 = 0 }, h:snapshot())
      assert.are.equal(0, h:percentile(50))
    end)

    it("refuse negative, NaN and infinite values and bad percentiles", function()
      local h = metrics.histogram("spec_refuse_hist")
      raises("histogram:observe: the value must be finite and >= 0, got -1", h.observe, h, -1)
      raises("histogram:observe: the value must be finite and >= 0", h.observe, h, 0 / 0)
      raises("histogram:observe: the value must be finite and >= 0", h.observe, h, math.huge)
      raises("histogram:observe: the value must be a number, got boolean", h.observe, h, true)
      raises("histogram:percentile: the percentile must be between 0 and 100", h.percentile, h, 101)
      raises("histogram:percentile: the value must be a number", h.percentile, h, "50")
      assert.are.equal(0, h:snapshot().count)
    end)

    it("merge histograms with the same buckets and range", function()
      local a = metrics.histogram("spec_parts", { labels = { part = "a" } })
      local b = metrics.histogram("spec_parts", { labels = { part = "b" } })
      for i = 1, 10 do (i % 2 == 0 and a or b):observe(i) end
      a:merge(b)
      local s = a:snapshot()
      assert.are.equal(10, s.count)
      assert.are.equal(55, s.sum)
      assert.are.equal(1, s.min)
      assert.are.equal(10, s.max)
      local other = metrics.histogram("spec_parts_other", { buckets = { 1, 2 } })
      raises("histogram:merge: the histograms differ", a.merge, a, other)
      raises("histogram:merge: the histograms differ", a.merge, a, a)
      raises("histogram:merge: other must be a histogram", a.merge, a, metrics.counter("spec_refuse"))
    end)

    it("time with timers", function()
      local h = metrics.histogram("spec_timed", { unit = "seconds" })
      local t = metrics.timer(h)
      po.sleep(0.02)
      local elapsed = t:stop()
      assert(elapsed >= 0.02)
      local s = h:snapshot()
      assert.are.equal(1, s.count)
      assert.are.equal(elapsed, s.sum)
      raises("timer:stop: the timer was already stopped", t.stop, t)
      raises("po.metrics.timer: h must be a histogram, got table", metrics.timer, metrics.counter("spec_refuse"))
      raises("po.metrics.timer: h must be a histogram, got nil", metrics.timer)
    end)
  end)

  describe("registration", function()
    it("refuses conflicts, bad names, bad labels and bad options", function()
      metrics.counter("spec_conflict", { help = "one" })
      raises("po.metrics.gauge: 'spec_conflict' is already registered as a counter, not a gauge",
        metrics.gauge, "spec_conflict")
      raises("po.metrics.counter: 'spec_conflict' is already registered with another help text",
        metrics.counter, "spec_conflict", { help = "two" })
      raises("po.metrics.counter: 'spec_conflict' is already registered with the label names {}",
        metrics.counter, "spec_conflict", { labels = { a = "1" } })
      raises("po.metrics.gauge: 'spec_conflict_total' (gauge) would write samples named like those of the counter",
        metrics.gauge, "spec_conflict_total")
      raises("po.metrics.counter: invalid metric name 'bad-name'", metrics.counter, "bad-name")
      raises("po.metrics.counter: name must be a string, got nil", metrics.counter)
      raises("po.metrics.counter: unknown option 'lables'", metrics.counter, "spec_x", { lables = {} })
      raises("po.metrics.counter: unknown option 'buckets'", metrics.counter, "spec_x", { buckets = { 1 } })
      raises("po.metrics.counter: options must be a table, got string", metrics.counter, "spec_x", "help")
      raises("po.metrics.counter: help must be a string, got number", metrics.counter, "spec_x", { help = 1 })
      raises("po.metrics.counter: labels must be a table, got string", metrics.counter, "spec_x", { labels = "a" })
      raises("po.metrics.counter: label 'a' must be a string or a number, got boolean",
        metrics.counter, "spec_x", { labels = { a = true } })
      raises("po.metrics.counter: label names must be strings, got number",
        metrics.counter, "spec_x", { labels = { "v" } })
      raises("po.metrics.counter: invalid label name 'a b'", metrics.counter, "spec_x", { labels = { ["a b"] = "1" } })
      raises("po.metrics.counter: label name '__a' is reserved", metrics.counter, "spec_x", { labels = { __a = "1" } })
      raises("po.metrics.histogram: label name 'le' is reserved", metrics.histogram, "spec_x", { labels = { le = "1" } })
      raises("po.metrics.counter: the value of label 'a' is not valid UTF-8",
        metrics.counter, "spec_x", { labels = { a = "\255" } })
      raises("po.metrics.histogram: buckets must be a list of numbers", metrics.histogram, "spec_x",
        { buckets = { 1, "2" } })
      raises("po.metrics.histogram: buckets must hold 1 to 64 bounds", metrics.histogram, "spec_x", { buckets = {} })
      raises("po.metrics.histogram: bucket bounds must increase strictly", metrics.histogram, "spec_x",
        { buckets = { 2, 1 } })
      raises("po.metrics.histogram: bucket bounds must be finite", metrics.histogram, "spec_x",
        { buckets = { 1, math.huge } })
      raises("po.metrics.histogram: lowest must be a positive number", metrics.histogram, "spec_x", { lowest = -1 })
      raises("po.metrics.histogram: invalid range", metrics.histogram, "spec_x", { lowest = 10, highest = 1 })
      local labels = {}
      for i = 1, 17 do labels["l" .. i] = "v" end
      raises("po.metrics.counter: more than 16 labels", metrics.counter, "spec_x", { labels = labels })
      local raw = require("poengine_core").metrics.register("counter", "spec_conflict")
      raises("gauge:set: 'spec_conflict' is a counter, not a gauge", raw.set, raw, 1)
      raises("histogram:observe: 'spec_conflict' is a counter, not a histogram", raw.observe, raw, 1)
      raises("metric:value: a histogram has no single value", metrics.histogram("spec_empty")._ud.value,
        metrics.histogram("spec_empty")._ud)
    end)
  end)

  describe("the FFI fast path", function()
    it("finds the module's own symbols when poengine_core.so is loaded by stock luajit", function()
      local moddir = os.getenv("POENGINE_MODULE_DIR") or "build"
      local code = [[
        require "poengine_core" -- installs the searcher for the compiled-in modules
        local po = require "poengine"
        local c = po.metrics.counter("stock_total", { help = "h" })
        for _ = 1, 100000 do c:inc() end
        local h = po.metrics.histogram("stock_hist")
        h:observe(2)
        local raw = require("poengine_core").metrics.register("counter", "stock_total")
        print(po.metrics.fast_path, raw:value(), h:snapshot().count)
        print(pcall(c.inc, c, -1))
      ]]
      local preload = os.getenv("POENGINE_SANITIZER_PRELOAD") or ""
      if preload ~= "" then preload = "LD_PRELOAD=" .. q(preload) .. " " end
      local status, out, err = proc.sh(preload .. "LUA_CPATH=" .. q(moddir .. "/?.so;;") .. " luajit -e " .. q(code))
      assert.are.equal(0, status, err)
      assert.are.equal("ffi.load\t100000\t1\nfalse\tcounter:inc: a counter only goes up by a finite amount >= 0, "
        .. "got -1\n", out)
    end)

    it("falls back to the C API with POENGINE_METRICS_FFI=off", function()
      local status, out, err = run_child([[
        local c = po.metrics.counter("capi_total")
        for _ = 1, 1000 do c:inc() end
        local g = po.metrics.gauge("capi_gauge")
        g:set(2) g:add(0.5)
        local h = po.metrics.histogram("capi_hist")
        h:observe(3)
        print(po.metrics.fast_path, c:value(), g:value(), h:snapshot().count, pcall(c.inc, c, -1))
        print(pcall(function() c:inc(-1) end))
      ]], "POENGINE_METRICS_FFI=off")
      assert.are.equal(0, status, err)
      local first, second = out:match("^([^\n]*)\n([^\n]*)\n$")
      assert.are.equal("c-api\t1000\t2.5\t1\tfalse\tcounter:inc: a counter only goes up by a finite amount >= 0, "
        .. "got -1", first)
      -- raised from user code, the message names the user's line
      assert.matches("^false\t[^\t]*%.lua:8: counter:inc: a counter only goes up", second)
    end)
  end)

  describe("exposition", function()
    local registry = [[
      local c = po.metrics.counter("http_requests_total", { help = 'Requests "served"\\ and\nmore.',
        labels = { code = 200, path = '/a"b\\c\nd' } })
      c:inc(3)
      local g = po.metrics.gauge("queue_depth", { help = "Jobs waiting." })
      g:set(1.5)
      local h = po.metrics.histogram("request_latency", { help = "Latency.", unit = "seconds",
        buckets = { 0.1, 1, 2.5 }, labels = { op = "get" } })
      for _, v in ipairs { 0.05, 0.1, 0.5, 3 } do h:observe(v) end
      io.write(po.metrics.expose(FORMAT))
    ]]

    local function expose(format)
      local status, out, err = run_child("FORMAT = " .. ("%q"):format(format) .. "\n" .. registry)
      assert.are.equal(0, status, err)
      return out
    end

    it("writes Prometheus text 0.0.4 exactly", function()
      assert.are.equal(table.concat({
        '# HELP http_requests_total Requests "served"\\\\ and\\nmore.',
        "# TYPE http_requests_total counter",
        'http_requests_total{code="200",path="/a\\"b\\\\c\\nd"} 3',
        "# HELP queue_depth Jobs waiting.",
        "# TYPE queue_depth gauge",
        "queue_depth 1.5",
        "# HELP request_latency_seconds Latency.",
        "# TYPE request_latency_seconds histogram",
        'request_latency_seconds_bucket{op="get",le="0.1"} 2',
        'request_latency_seconds_bucket{op="get",le="1.0"} 3',
        'request_latency_seconds_bucket{op="get",le="2.5"} 3',
        'request_latency_seconds_bucket{op="get",le="+Inf"} 4',
        'request_latency_seconds_sum{op="get"} 3.65',
        'request_latency_seconds_count{op="get"} 4',
        "",
      }, "\n"), expose("prometheus"))
    end)

    it("writes OpenMetrics 1.0 text ending in # EOF", function()
      assert.are.equal(table.concat({
        "# TYPE http_requests counter",
        '# HELP http_requests Requests \\"served\\"\\\\ and\\nmore.',
        'http_requests_total{code="200",path="/a\\"b\\\\c\\nd"} 3',
        "# TYPE queue_depth gauge",
        "# HELP queue_depth Jobs waiting.",
        "queue_depth 1.5",
        "# TYPE request_latency_seconds histogram",
        "# UNIT request_latency_seconds seconds",
        "# HELP request_latency_seconds Latency.",
        'request_latency_seconds_bucket{op="get",le="0.1"} 2',
        'request_latency_seconds_bucket{op="get",le="1.0"} 3',
        'request_latency_seconds_bucket{op="get",le="2.5"} 3',
        'request_latency_seconds_bucket{op="get",le="+Inf"} 4',
        'request_latency_seconds_sum{op="get"} 3.65',
        'request_latency_seconds_count{op="get"} 4',
        "# EOF",
        "",
      }, "\n"), expose("openmetrics"))
    end)

    it("is accepted by promtool check metrics", function()
      local text = expose("prometheus")
      assert(#text > 0)
      local status, out, err = proc.sh("promtool check metrics", text)
      assert.are.equal(0, status, out .. err)
      -- and promtool is a real judge: it refuses a broken exposition
      status = proc.sh("promtool check metrics", (text:gsub("queue_depth 1.5", "queue_depth one")))
      assert.are_not.equal(0, status)
    end)

    it("is accepted by promtool with the collector's and profiler's metrics in it", function()
      local status, out, err = run_child([[
        local col = po.metrics.collector()
        col:start_cycle(1, { k = "v" })
        col:record_llm_call(1, { cache_hit = false, tokens_in = 5, tokens_out = 7, cost = 0.1, latency = 0.3,
          provider = "openai" })
        col:record_llm_call(1, { cache_hit = true, provider = "openai" })
        col:record_validation(1, 0.2)
        col:record_file_operation(1)
        col:end_cycle(1, true)
        po.profile("step", function() end)()
        io.write(po.metrics.expose("prometheus"))
      ]])
      assert.are.equal(0, status, err)
      assert.matches('po_cycles_total{collector="default",result="success"} 1', out, 1, true)
      assert.matches('po_llm_calls_total{cache="hit",collector="default",provider="openai"} 1', out, 1, true)
      local pstatus, pout, perr = proc.sh("promtool check metrics", out)
      assert.are.equal(0, pstatus, pout .. perr)
    end)

    it("is read back by the OpenMetrics parser of prometheus_client", function()
      local text = expose("openmetrics")
      local parser = proc.tempfile([[
import sys
from prometheus_client.openmetrics.parser import text_string_to_metric_families
for f in text_string_to_metric_families(sys.stdin.read()):
    for s in f.samples:
        print(f.name, f.type, f.unit, repr(f.documentation), s.name, sorted(s.labels.items()), s.value)
]], ".py")
      local status, out, err = proc.sh("/usr/bin/python3 " .. q(parser), text)
      os.remove(parser)
      assert.are.equal(0, status, err)
      assert.matches([[http_requests counter  'Requests "served"\\ and\nmore.' http_requests_total ]]
        .. [[[('code', '200'), ('path', '/a"b\\c\nd')] 3]], out, 1, true)
      assert.matches("request_latency_seconds histogram seconds 'Latency.' request_latency_seconds_bucket "
        .. "[('le', '2.5'), ('op', 'get')] 3", out, 1, true)
      assert.matches("queue_depth gauge  'Jobs waiting.' queue_depth [] 1.5", out, 1, true)
    end)

    it("writes a JSON document", function()
      local doc = assert(po.json.decode(expose("json")))
      assert.are.equal(3, #doc.metrics)
      local c, g, h = doc.metrics[1], doc.metrics[2], doc.metrics[3]
      assert.are.same({ name = "http_requests", type = "counter", help = 'Requests "served"\\ and\nmore.', unit = "",
        samples = { { labels = { code = "200", path = '/a"b\\c\nd' }, value = 3 } } }, c)
      assert.are.same({ labels = {}, value = 1.5 }, g.samples[1])
      local s = h.samples[1]
      assert.are.equal("seconds", h.unit)
      assert.are.equal(4, s.count)
      assert.are.equal(3.65, s.sum)
      assert.are.equal(0.05, s.min)
      assert.are.equal(3, s.max)
      assert.are.same({ { le = 0.1, count = 2 }, { le = 1, count = 3 }, { le = 2.5, count = 3 },
        { le = "+Inf", count = 4 } }, s.buckets)
      assert.is_number(s.p50)
    end)

    it("refuses an unknown format", function()
      raises("po.metrics.expose: format must be 'prometheus', 'openmetrics' or 'json', got 'xml'",
        metrics.expose, "xml")
      raises("got nil", metrics.expose)
    end)

    it("lists every metric with collect(), families in name order", function()
      local all = metrics.collect()
      assert(#all > 5)
      for i = 2, #all do assert(all[i - 1].name <= all[i].name) end
      local found
      for _, m in ipairs(all) do
        if m.name == "spec_requests" and m.labels.path == "/" then found = m end
      end
      assert.are.equal(4.5, found.value)
    end)
  end)
end)

describe("po.metrics from the worker pool", function()
  it("sums increments from 4 pool workers exactly", function()
    po.pool.configure { workers = 4 }
    local c = po.metrics.counter("pool_spec_increments", { help = "Increments from pool workers." })
    local before = c:value()
    local futures = {}
    for i = 1, 4 do
      futures[i] = po.pool.submit(function(n)
        local counter = require("poengine").metrics.counter("pool_spec_increments")
        for _ = 1, n do
          counter:inc()
        end
        return n
      end, 100000)
    end
    local results = assert(po.all(futures))
    assert.are.same({ 100000, 100000, 100000, 100000 }, { results[1], results[2], results[3], results[4] })
    assert.are.equal(before + 400000, c:value())
  end)
end)
