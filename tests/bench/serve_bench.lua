-- poengine serve under load, with wrk (Debian's): requests per second and
-- the 99th-percentile latency of /metrics beside Python's prometheus_client
-- HTTP server exposing the same families (parsed from our own /metrics),
-- and of /api/runs/<id> beside the same baseline; then what serving costs a
-- running optimization: a run's wall time with --serve and a client polling
-- every 100 ms, beside the same run without.
local po = require "poengine"
local lib = require "tests.bench.lib"
local home_tool = require "tests.tools.serve_home"

local bin = arg[-1] or "poengine"
local dir = os.tmpname()
os.remove(dir)
assert(os.execute("mkdir -p " .. dir) == 0)
local home = dir .. "/home"
home_tool.run(home, "alpha", 2)
home_tool.run(home, "beta", 1)

local function free_port()
  local srv = assert(po.http.serve { host = "127.0.0.1", port = 0, routes = {} })
  local port = srv.port
  srv:close()
  return port
end

local function wait_up(url)
  for _ = 1, 200 do
    local res = po.http.request { url = url, timeout = 2 }:wait()
    if res and res.status == 200 then
      return res
    end
    po.sleep(0.05)
  end
  error("nothing answers at " .. url)
end

local serve_port, py_port = free_port(), free_port()
local serve = po.run { argv = { bin, "serve", "--home", home, "--listen", "127.0.0.1:" .. serve_port } }
local ours = "http://127.0.0.1:" .. serve_port
local text = wait_up(ours .. "/metrics").body
assert(po.write_file(dir .. "/metrics.txt", text))
local python = po.run { argv = { "/usr/bin/python3", "tests/bench/prom_client_server.py", dir .. "/metrics.txt",
  tostring(py_port) } }
local theirs = "http://127.0.0.1:" .. py_port
wait_up(theirs .. "/metrics")

-- One wrk run: requests per second and the p99 latency (seconds).
local function wrk(url)
  local r = po.run_sync { argv = { "wrk", "-t1", "-c8", "-d2s", "--latency", url }, timeout = 60 }
  assert(r.status == "ok", r.stderr)
  local rps = tonumber(r.stdout:match("Requests/sec:%s*([%d.]+)"))
  local v, unit = r.stdout:match("\n%s*99%%%s+([%d.]+)(%a+)")
  local scale = ({ us = 1e-6, ms = 1e-3, s = 1 })[unit]
  assert(rps and v and scale, r.stdout)
  local non2xx = tonumber(r.stdout:match("Non%-2xx or 3xx responses:%s*(%d+)")) or 0
  assert(non2xx == 0, "wrk saw error responses: " .. r.stdout)
  return rps, tonumber(v) * scale
end

local function load_row(case, url, base_url)
  local p99s, base_p99s = {}, {}
  lib.compare {
    name = "serve", case = case .. ": seconds per request (1/requests per second; wrk, 8 connections, 2 s)",
    subject = { label = "poengine serve", fn = function()
      local rps, p99 = wrk(url)
      p99s[#p99s + 1] = p99
      return 1 / rps
    end },
    baseline = { label = "prometheus_client", fn = function()
      local rps, p99 = wrk(base_url)
      base_p99s[#base_p99s + 1] = p99
      return 1 / rps
    end },
    unit = "us", runs = 5,
  }
  lib.record {
    name = "serve", case = case .. ": p99 latency", unit = "ms", runs = #p99s,
    subject = { label = "poengine serve", value = lib.median(p99s) * 1e3 },
    baseline = { label = "prometheus_client", value = lib.median(base_p99s) * 1e3 },
  }
end

load_row("/metrics", ours .. "/metrics", theirs .. "/metrics")
load_row("/api/runs/alpha beside prometheus_client's /metrics", ours .. "/api/runs/alpha", theirs .. "/metrics")
serve:cancel()
python:cancel()

-- What serving costs a run: the same 3-cycle run with --serve and a client
-- polling /api/runs/<id> and /metrics every 100 ms, beside it without.
local n = 0
local function optimize(served)
  n = n + 1
  local id = "cost" .. n
  local task = home_tool.task_file(dir, id, 3)
  local args = { bin, "optimize", task, "--quiet" }
  local poller
  if served then
    local port = free_port()
    args[#args + 1] = "--serve"
    args[#args + 1] = "127.0.0.1:" .. port
    poller = po.run { argv = { bin, "-e", ([[
      local po = require "poengine"
      while true do
        po.http.request { url = "http://127.0.0.1:%d/api/runs/%s", timeout = 1 }:wait()
        po.http.request { url = "http://127.0.0.1:%d/metrics", timeout = 1 }:wait()
        po.sleep(0.1)
      end]]):format(port, id, port) } }
  end
  local t0 = po.now()
  local r = po.run_sync { argv = args, env = { POENGINE_HOME = dir .. "/cost-home" }, timeout = 600 }
  local wall = po.now() - t0
  if poller then
    poller:cancel()
  end
  assert(r.status == "ok", r.stderr)
  return wall
end

lib.compare {
  name = "serve", case = "a 3-cycle optimize run's wall time, served and polled every 100 ms",
  subject = { label = "--serve + poller", fn = function() return optimize(true) end },
  baseline = { label = "not served", fn = function() return optimize(false) end },
  unit = "s", runs = 5, warmup = false, goal = { max_ratio = 1.05 },
}
os.execute("rm -rf " .. dir)
