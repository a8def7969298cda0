--- Test helper: one engine of the shared-limits specs and benchmark, run as
--- its own poengine process: `poengine tests/tools/router_worker.lua JSON [N]`.
--- JSON: { llm_url, key, model, redis, name, on_shared_error?, timeout?,
--- budget?, rpm?, tpm?, window?, cooldown?, calls, max_tokens?, prompt?,
--- go? (a file to wait for before calling, so that several workers start
--- together; worker N says it is ready by making go .. ".readyN"),
--- sequential? }. Makes `calls` calls at once (one after the
--- other with sequential) through a router sharing its limits, and prints
--- one JSON line: { ok =, codes = { CODE = n }, messages = { first message
--- of each code }, waits = { what on_wait was told }, spent_tokens =,
--- spent_usd =, shared = (stats) }.
--- Required as a module, it gives `run(n, cfg)`, which starts n workers.
local po = require "poengine"

local function exists(path)
  local f = io.open(path)
  if f then
    f:close()
  end
  return f ~= nil
end

if ... == "tests.tools.router_worker" then
  local source = os.getenv("POENGINE_SOURCE_DIR") or "."
  return {
    --- Starts n workers with the config cfg, released together once all
    --- are ready, and returns their decoded reports (each with its stderr)
    --- once all have exited; raises if one fails.
    run = function(n, cfg)
      local go = os.tmpname()
      os.remove(go)
      cfg.go = go
      local futs = {}
      for i = 1, n do
        futs[i] = po.run { argv = { po.executable(), source .. "/tests/tools/router_worker.lua", po.json.encode(cfg),
          tostring(i) }, timeout = 120 }
      end
      for i = 1, n do
        while not exists(go .. ".ready" .. i) and not futs[i]:done() do
          po.sleep(0.01)
        end
        os.remove(go .. ".ready" .. i)
      end
      assert(po.write_file(go, "go"))
      local reports = {}
      for i = 1, n do
        local res = futs[i]:wait()
        assert(res.status == "ok", res.stderr)
        reports[i] = assert(po.json.decode(res.stdout))
        reports[i].stderr = res.stderr
      end
      os.remove(go)
      return reports
    end,
  }
end

local cfg = assert(po.json.decode(assert(arg[1], "usage: router_worker.lua JSON")))

local shared
if cfg.redis then
  shared = { redis = cfg.redis, name = cfg.name, on_shared_error = cfg.on_shared_error, timeout = cfg.timeout }
end
local waits = {}
local r = po.llm.router {
  deployments = { { provider = "openai", base_url = cfg.llm_url .. "/v1", model = cfg.model, api_key = cfg.key,
    rpm = cfg.rpm, tpm = cfg.tpm, name = "openai" } },
  retries = cfg.retries or 0,
  backoff = { base = 0.01, max = 0.05 },
  budget = cfg.budget,
  cooldown = cfg.cooldown,
  shared = shared,
  on_wait = function(text)
    waits[#waits + 1] = text
  end,
}
if cfg.window then
  r._limit_window = cfg.window
end

if cfg.go then
  assert(po.write_file(cfg.go .. ".ready" .. assert(arg[2], "a worker released by go needs its number"), ""))
  while not exists(cfg.go) do
    po.sleep(0.01)
  end
end

local request = { prompt = cfg.prompt or "one two three four", max_tokens = cfg.max_tokens or 10 }
local ok, codes, messages = 0, {}, {}
local function count(res, err, code)
  if res then
    ok = ok + 1
  else
    codes[code] = (codes[code] or 0) + 1
    messages[code] = messages[code] or err
  end
end
if cfg.sequential then
  for _ = 1, cfg.calls do
    count(r:complete(request))
  end
else
  local futs = {}
  for i = 1, cfg.calls do
    futs[i] = r:complete_async(request)
  end
  for _, f in ipairs(futs) do
    count(f:wait())
  end
end
r:flush() -- the settles sent in the background
io.stdout:write(po.json.encode { ok = ok, codes = codes, messages = messages, waits = waits, spent_tokens = r.spent_tokens,
  spent_usd = r.spent_usd, shared = r:stats().shared }, "\n")
