--- Test helper: one engine of the shared-limits specs and benchmark, run as
--- its own poengine process: `poengine tests/tools/router_worker.lua JSON`.
--- JSON: { llm_url, key, model, redis, name, on_shared_error?, timeout?,
--- budget?, rpm?, tpm?, window?, cooldown?, calls, max_tokens?, prompt?,
--- go? (a file to wait for before calling, so that several workers start
--- together), sequential? }. Makes `calls` calls at once (one after the
--- other with sequential) through a router sharing its limits, and prints
--- one JSON line: { ok =, codes = { CODE = n }, messages = { first message
--- of each code }, waits = { what on_wait was told }, spent_tokens =,
--- spent_usd =, shared = (stats) }.
local po = require "poengine"

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
  while not io.open(cfg.go) do
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
