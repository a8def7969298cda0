-- poengine serve over real runs: the JSON API, /metrics in both formats
-- (checked by promtool), the event stream of a run as it writes, the
-- pages, and what a hostile or careless client gets (a path out of the
-- home, a link out of it, a wrong token, a run removed while served).
local po = require "poengine"
local proc = require "tests.tools.proc"
local home_tool = require "tests.tools.serve_home"
local serve = require "poengine.serve"
local model = require "poengine.runs.model"

local function get(url, headers, opts)
  local spec = { url = url, headers = headers, timeout = 60 }
  for k, v in pairs(opts or {}) do
    spec[k] = v
  end
  return assert(po.http.request(spec):wait())
end

local function json_of(res)
  return assert(po.json.decode(res.body), res.body)
end

describe("poengine serve", function()
  local home, srv
  setup(function()
    home = proc.tempdir()
    home_tool.run(home, "alpha", 2)
    home_tool.run(home, "beta", 1)
    srv = assert(serve.start { home = home, listen = "127.0.0.1:0" })
  end)
  teardown(function()
    if srv then
      srv:close()
    end
    proc.rmdir(home)
  end)

  it("lists the runs newest first with the figures of their models", function()
    local res = get(srv.url .. "/api/runs")
    assert.are.equal(200, res.status)
    assert.truthy(res.headers["content-type"]:find("application/json", 1, true))
    local doc = json_of(res)
    assert.are.same({ "beta", "alpha" }, { doc.runs[1].id, doc.runs[2].id })
    local alpha = assert(model.load(home .. "/runs/alpha"))
    local got = doc.runs[2]
    assert.are.equal(alpha.cycles, got.cycles)
    assert.are.equal(2, got.cycles)
    assert.are.equal("finished", got.status)
    assert.are.equal(#alpha.candidates, got.candidates)
    assert.are.same(alpha.chain, got.chain)
    assert.are.equal(alpha.best.speedup, got.best.speedup)
    assert.are.same({}, doc.unreadable)
  end)

  it("gives one run's summary and its candidates", function()
    local alpha = assert(model.load(home .. "/runs/alpha"))
    local run = json_of(get(srv.url .. "/api/runs/alpha"))
    assert.are.equal("alpha", run.id)
    assert.are.equal("min", run.direction)
    assert.are.same(alpha.cycle_outcomes[1].proposed, run.cycle_outcomes[1].proposed)
    local cands = json_of(get(srv.url .. "/api/runs/alpha/candidates"))
    assert.are.equal(#alpha.candidates, #cands.candidates)
    for i, c in ipairs(alpha.candidates) do
      assert.are.same({ c.id, c.cycle, c.parent, c.verdict or po.json.null },
        { cands.candidates[i].id, cands.candidates[i].cycle, cands.candidates[i].parent,
          cands.candidates[i].verdict or po.json.null })
    end
  end)

  it("answers an unknown run or page with 404 and a JSON error", function()
    local res = get(srv.url .. "/api/runs/nosuch")
    assert.are.equal(404, res.status)
    assert.are.equal("ENOENT", json_of(res).code)
    assert.are.equal(404, get(srv.url .. "/api/runs/alpha/nope").status)
    assert.are.equal(404, get(srv.url .. "/runs/alpha/nope").status)
    assert.are.equal(404, get(srv.url .. "/nothing-here").status)
  end)

  it("never serves what is outside the home: dot segments, encoded slashes, links", function()
    assert(os.execute("ln -s /etc " .. home .. "/runs/evil") == 0)
    assert(po.write_file(home .. "/secret.txt", "do not serve"))
    for _, path in ipairs { "/api/runs/..", "/api/runs/%2e%2e", "/api/runs/..%2fsecret.txt",
      "/runs/%2e%2e%2f%2e%2e%2fetc%2fpasswd", "/api/runs/evil", "/api/runs/evil/candidates",
      "/runs/evil", "/api/runs/%00", "/runs/alpha%2f..%2f..%2fsecret.txt" } do
      local res = get(srv.url .. path)
      assert.is_true(res.status == 400 or res.status == 404, path .. " got " .. res.status)
      assert.is_nil(res.body:find("do not serve", 1, true), path)
      assert.is_nil(res.body:find("root:", 1, true), path)
    end
    os.remove(home .. "/runs/evil")
  end)

  it("exposes the runs' figures in Prometheus text and OpenMetrics, both accepted by promtool", function()
    local res = get(srv.url .. "/metrics")
    assert.are.equal(200, res.status)
    assert.are.equal("text/plain; version=0.0.4; charset=utf-8", res.headers["content-type"])
    local alpha = assert(model.load(home .. "/runs/alpha"))
    assert.truthy(res.body:find('\npoengine_run_cycles{run="alpha",task="alpha"} 2\n', 1, true), res.body)
    assert.truthy(res.body:find(('poengine_run_best_speedup{run="alpha",task="alpha"} %s\n'):format(
      require("poengine.metrics.expose").number(alpha.best.speedup)), 1, true))
    assert.truthy(res.body:find('poengine_run_running{run="beta",task="beta"} 0\n', 1, true))
    local status, out, err = proc.sh("promtool check metrics", res.body)
    assert.is_true(status == 0 or not (out .. err):find("error", 1, true), out .. err)

    local om = get(srv.url .. "/metrics", { Accept = "application/openmetrics-text;version=1.0.0,text/plain;q=0.5" })
    assert.are.equal("application/openmetrics-text; version=1.0.0; charset=utf-8", om.headers["content-type"])
    assert.are.equal("# EOF\n", om.body:sub(-6))
    -- the server counts its own requests in the same registry
    assert.truthy(om.body:find('poengine_serve_requests_total{code="200",route="/metrics"}', 1, true), om.body)
  end)

  it("streams a run's events as they are written, resuming from Last-Event-ID", function()
    local parse = home_tool.sse()
    local got = {}
    local fut = po.http.request { url = srv.url .. "/api/runs/beta/events?from=0", timeout = 120,
      on_chunk = function(chunk)
        for _, ev in ipairs(parse(chunk)) do
          got[#got + 1] = ev
        end
      end }
    -- the whole log first
    local before = #assert(model.events(home .. "/runs/beta"))
    while #got < before do
      po.sleep(0.05)
    end
    assert.are.equal("start", got[1].event)
    assert.are.equal("end", got[before].event)
    -- then what a resumed run writes, as it writes it
    home_tool.run(home, "beta", 2, { resume = true })
    local evs = assert(model.events(home .. "/runs/beta"))
    while #got < #evs do
      po.sleep(0.05)
    end
    fut:cancel()
    for i, ev in ipairs(evs) do
      assert.are.equal(ev.kind, got[i].event)
      assert.are.same(ev, got[i].data)
    end
    -- a client that reconnects with the id of the 3rd event gets the 4th on
    local parse2, again = home_tool.sse(), {}
    local fut2 = po.http.request { url = srv.url .. "/api/runs/beta/events", headers = { ["Last-Event-ID"] = got[3].id },
      timeout = 120, on_chunk = function(chunk)
        for _, ev in ipairs(parse2(chunk)) do
          again[#again + 1] = ev
        end
      end }
    while #again < #evs - 3 do
      po.sleep(0.05)
    end
    fut2:cancel()
    assert.are.same(evs[4], again[1].data)
  end)

  it("starts a stream over, with a reset event, when the run is started afresh under its id", function()
    local parse, got = home_tool.sse(), {}
    local size = assert(po.files.stat(home .. "/runs/beta/events.jsonl")).size
    local fut = po.http.request { url = srv.url .. "/api/runs/beta/events?from=" .. size, timeout = 120,
      on_chunk = function(chunk)
        for _, ev in ipairs(parse(chunk)) do
          got[#got + 1] = ev
        end
      end }
    home_tool.run(home, "beta", 1) -- not resumed: a new log
    local evs = assert(model.events(home .. "/runs/beta"))
    while #got < #evs + 1 do
      po.sleep(0.05)
    end
    fut:cancel()
    assert.are.equal("reset", got[1].event)
    for i, ev in ipairs(evs) do
      assert.are.same(ev, got[i + 1].data)
    end
  end)

  it("waits for the log of a run whose directory exists but whose first event is still to come", function()
    assert(os.execute("mkdir -p " .. home .. "/runs/fresh") == 0)
    local parse, got = home_tool.sse(), {}
    local fut = po.http.request { url = srv.url .. "/api/runs/fresh/events", timeout = 60,
      on_chunk = function(chunk)
        for _, ev in ipairs(parse(chunk)) do
          got[#got + 1] = ev
        end
      end }
    po.sleep(0.6) -- two polls with no log: the stream stays open
    assert.is_false(fut:done())
    assert(po.write_file(home .. "/runs/fresh/events.jsonl", '{"kind":"start","task":"fresh"}\n'))
    while #got == 0 do
      po.sleep(0.05)
    end
    fut:cancel()
    assert.are.equal("start", got[1].event)
    assert.are.equal("fresh", got[1].data.task)
    proc.rmdir(home .. "/runs/fresh")
  end)

  it("serves the index and a run's live page and fragment, self-contained", function()
    local index = get(srv.url .. "/")
    assert.are.equal(200, index.status)
    assert.truthy(index.body:find('href="/runs/alpha"', 1, true))
    assert.truthy(index.body:find('href="/runs/beta"', 1, true))
    local page = get(srv.url .. "/runs/alpha")
    assert.are.equal(200, page.status)
    assert.truthy(page.body:find("/api/runs/alpha/events", 1, true))
    assert.is_nil(page.body:find("<script[^>]+src=") )
    assert.is_nil(page.body:find("<link[^>]+href=") )
    local frag = get(srv.url .. "/runs/alpha/fragment")
    assert.are.equal(200, frag.status)
    assert.truthy(frag.body:find("c1.1", 1, true))
  end)
end)

describe("poengine serve, hostile clients", function()
  local home, srv
  setup(function()
    home = proc.tempdir()
    home_tool.run(home, "alpha", 1)
    srv = assert(serve.start { home = home, listen = "127.0.0.1:0", timeout = 2 })
  end)
  teardown(function()
    srv:close()
    proc.rmdir(home)
  end)

  -- Raw bytes to the server on a socket of curl's own (telnet mode), what
  -- came back.
  local function raw(bytes, seconds)
    local r = assert(po.run { argv = { "curl", "-s", "--max-time", tostring(seconds or 10), "telnet://"
      .. srv.url:match("//(.*)$") }, stdin = bytes }:wait())
    return r.stdout
  end

  it("answers oversized headers with 431 and a request line it cannot parse with 400", function()
    local big = raw("GET /api/runs HTTP/1.1\r\nHost: x\r\nX-Big: " .. ("a"):rep(64 * 1024) .. "\r\n\r\n")
    assert.truthy(big == "" or big:match("^HTTP/1%.1 431"), big:sub(1, 80))
    local bad = raw("BLAH\r\n\r\n")
    assert.truthy(bad == "" or bad:match("^HTTP/1%.1 400"), bad:sub(1, 80))
    -- and the server goes on answering
    assert.are.equal(200, assert(po.http.request { url = srv.url .. "/api/runs", timeout = 20 }:wait()).status)
  end)

  it("drops a client that sends half a request and stalls", function()
    -- the request never ends; the server closes the connection after its
    -- idle timeout (2 s here) instead of holding it: curl sees the close
    -- well before its own 30 s limit
    local r = assert(po.run { argv = { "curl", "-s", "--max-time", "30", "-w", "%{exitcode}", "telnet://"
      .. srv.url:match("//(.*)$") }, stdin = "GET /api/runs HTTP/1.1\r\nHost: x\r\n" }:wait())
    assert.are.equal("0", r.stdout:match("(%d+)$"), r.stdout .. r.stderr) -- 0: closed by the server; 28: curl's timeout
  end)
end)

describe("poengine serve's addresses", function()
  it("reads HOST:PORT, [IPv6]:PORT, PORT and localhost, and names what is wrong", function()
    assert.are.same({ "127.0.0.1", 8080 }, { serve.parse_listen("127.0.0.1:8080") })
    assert.are.same({ "::1", 9 }, { serve.parse_listen("[::1]:9") })
    assert.are.same({ "127.0.0.1", 0 }, { serve.parse_listen("0") })
    assert.are.same({ "127.0.0.1", 8080 }, { serve.parse_listen("localhost:8080") })
    for _, bad in ipairs { "", "nowhere", "1.2.3.4:99999", "host:", ":80" } do
      local host, err = serve.parse_listen(bad)
      assert.is_nil(host, bad)
      assert.is_string(err)
    end
  end)
end)

describe("poengine serve, guarded", function()
  it("needs a token off loopback, and then asks every request for it", function()
    local srv, err, code = serve.start { home = proc.tempdir(), listen = "0.0.0.0:0" }
    assert.is_nil(srv)
    assert.are.equal("EINVAL", code)
    assert.truthy(err:find("token", 1, true))

    local home = proc.tempdir()
    -- off loopback, with its token; asked through 127.0.0.1, which it
    -- listens on too
    srv = assert(serve.start { home = home, listen = "0.0.0.0:0", token = "s3cret-token" })
    local url = "http://127.0.0.1:" .. srv.port .. "/api/runs"
    local res = get(url)
    assert.are.equal(401, res.status)
    assert.truthy((res.headers["www-authenticate"] or ""):find("Bearer", 1, true))
    assert.are.equal(401, get(url, { Authorization = "Bearer wrong" }).status)
    assert.are.equal(401, get(url, { Authorization = "Bearer s3cret-token-and-more" }).status)
    assert.are.equal(200, get(url, { Authorization = "Bearer s3cret-token" }).status)
    assert.is_nil(res.body:find("s3cret", 1, true))
    srv:close()
    proc.rmdir(home)
  end)
end)
