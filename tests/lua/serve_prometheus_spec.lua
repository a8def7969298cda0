-- A real Prometheus (Debian's) scrapes poengine serve's /metrics, and its
-- query API returns what a run wrote: the scrape config, the exposition's
-- content type negotiation and the figures, end to end.
local po = require "poengine"
local proc = require "tests.tools.proc"
local home_tool = require "tests.tools.serve_home"
local model = require "poengine.runs.model"

-- A port nothing listens on now: one the kernel picks for a server that is
-- closed at once (Prometheus cannot be told to pick one and say which).
local function free_port()
  local srv = assert(po.http.serve { host = "127.0.0.1", port = 0, routes = {} })
  local port = srv.port
  srv:close()
  return port
end

describe("poengine serve under a real Prometheus", function()
  local dir, serve_fut, prom_fut
  after_each(function()
    if prom_fut then
      prom_fut:cancel()
    end
    if serve_fut then
      serve_fut:cancel()
    end
    proc.rmdir(dir)
  end)

  it("is scraped, and Prometheus answers a query for a figure the run wrote", function()
    dir = proc.tempdir()
    local home = dir .. "/home"
    home_tool.run(home, "alpha", 2)
    local want = assert(model.load(home .. "/runs/alpha"))

    local serve_port = free_port()
    serve_fut = po.run { argv = { proc.bin, "serve", "--home", home, "--listen", "127.0.0.1:" .. serve_port } }
    local prom_port = free_port()
    assert(po.write_file(dir .. "/prometheus.yml", ([[
global:
  scrape_interval: 1s
  scrape_timeout: 1s
scrape_configs:
  - job_name: poengine
    static_configs:
      - targets: ["127.0.0.1:%d"]
]]):format(serve_port)))
    prom_fut = po.run { argv = { "prometheus", "--config.file=" .. dir .. "/prometheus.yml",
      "--storage.tsdb.path=" .. dir .. "/tsdb", "--web.listen-address=127.0.0.1:" .. prom_port } }

    local api = "http://127.0.0.1:" .. prom_port .. "/api/v1/"
    local query = api .. "query?query=" .. ('poengine_run_cycles{run="alpha"}'):gsub("[^%w_]", function(c)
      return ("%%%02X"):format(c:byte())
    end)
    local result, tries = nil, 0
    repeat
      tries = tries + 1
      assert.is_false(prom_fut:done(), "prometheus ended: " .. tostring(prom_fut:done() and prom_fut:wait().stderr))
      local res = po.http.request { url = query, timeout = 5 }:wait()
      if res and res.status == 200 then
        local doc = po.json.decode(res.body)
        result = doc and doc.data and doc.data.result[1]
      end
      if not result then
        po.sleep(0.5)
      end
    until result or tries > 240
    assert.truthy(result, "no sample of poengine_run_cycles reached prometheus")
    assert.are.equal("alpha", result.metric.run)
    assert.are.equal("poengine", result.metric.job)
    assert.are.equal(tostring(want.cycles), result.value[2])

    -- the target is healthy: every scrape was parsed
    local targets = assert(po.json.decode(assert(po.http.request { url = api .. "targets", timeout = 5 }:wait()).body))
    local t = targets.data.activeTargets[1]
    assert.are.equal("up", t.health, t.lastError)
  end)
end)
