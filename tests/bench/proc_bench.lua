-- Child processes: po.run driven by the event loop beside xargs -P and GNU
-- parallel starting the same commands with the same concurrency.
local po = require "poengine"
local lib = require "tests.bench.lib"

-- Runs `count` commands with at most `width` at once: width po.async tasks
-- that take the next index until none is left.
local function run_many(count, width, argv)
  local next_i = 0
  local tasks = {}
  for w = 1, width do
    tasks[w] = po.async(function()
      while next_i < count do
        next_i = next_i + 1
        local r = po.run_sync { argv = argv }
        assert(r.status == "ok", r.error or r.stderr)
      end
    end)
  end
  for _, t in ipairs(tasks) do
    assert(t:wait() ~= nil or t.state == "done")
  end
end

local function tool(argv, count)
  local input = ("x\n"):rep(count)
  return function()
    local r = po.run_sync { argv = argv, stdin = input }
    assert(r.status == "ok", table.concat(argv, " ") .. ": " .. tostring(r.error or r.stderr))
  end
end

local n = 1000
lib.compare {
  name = "po.run",
  case = "1,000 × `/bin/true`, 2 at a time, vs `xargs -P2`",
  subject = { label = "po.run", fn = function() run_many(n, 2, { "/bin/true" }) end },
  baseline = { label = "xargs -P2", fn = tool({ "xargs", "-P2", "-n1", "/bin/true" }, n) },
  ops = n, unit = "us", runs = 7,
  goal = { max_ratio = 1.2 },
}

lib.compare {
  name = "po.run",
  case = "1,000 × `/bin/true`, 2 at a time, vs GNU `parallel -j2`",
  subject = { label = "po.run", fn = function() run_many(n, 2, { "/bin/true" }) end },
  baseline = { label = "parallel -j2", fn = tool({ "parallel", "--will-cite", "-j2", "-n1", "/bin/true" }, n) },
  ops = n, unit = "us", runs = 3, warmup = false,
  goal = { min_speedup = 5 },
}

local sleeps = 200
lib.compare {
  name = "po.run",
  case = "200 × `sleep 0.05`, 8 at a time, vs `xargs -P8` (ideal 1.25 s)",
  subject = { label = "po.run", fn = function() run_many(sleeps, 8, { "sleep", "0.05" }) end },
  baseline = { label = "xargs -P8", fn = function()
    local r = po.run_sync { argv = { "xargs", "-P8", "-n1", "sleep" }, stdin = ("0.05\n"):rep(sleeps) }
    assert(r.status == "ok", r.stderr)
  end },
  ops = 1, unit = "s", runs = 5, warmup = false,
  goal = { max_ratio = 1.05 },
}
