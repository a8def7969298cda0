-- quickstart.lua: what the engine does today, in one short flow.
--
-- An optimization loop evaluates many candidates at once and records what
-- it saw. Here the "candidates" are settings of a toy cost function and each
-- evaluation pretends to take a while (po.sleep stands in for a build or an
-- LLM call). All evaluations of a round run concurrently as po.async tasks on
-- one event loop, a slow one is cut off by a timeout, and the record of the
-- run is written as canonical JSON with po.json.
--
--   scripts/run examples/quickstart.lua [rounds]

local rounds = tonumber(arg and arg[1]) or 3

-- The thing being optimized: lower is better, best at x = 7.
local function cost(x)
  return (x - 7) ^ 2 + 3
end

-- One evaluation: takes 50 ms, except candidates above 12, which "hang".
local function evaluate(x)
  po.sleep(x > 12 and 10 or 0.05)
  return { x = x, cost = cost(x) }
end

local best = { x = 0, cost = cost(0) }
local history = {}
local started = po.now()

for round = 1, rounds do
  local width = 4 / round
  local candidates, futures = {}, {}
  for i = 1, 8 do
    local x = math.floor((best.x + (i - 4.5) * width) * 100 + 0.5) / 100
    candidates[i] = x
    futures[i] = po.async(evaluate, x)
  end

  local t0 = po.now()
  local accepted, timed_out = 0, 0
  for i, fut in ipairs(futures) do
    -- Every candidate shares one deadline: 0.5 s after the round started.
    local result, err, code = fut:wait(math.max(0, 0.5 - (po.now() - t0)))
    if result then
      if result.cost < best.cost then
        best = result
        accepted = accepted + 1
      end
    elseif code == "ETIMEDOUT" then
      timed_out = timed_out + 1
      fut:cancel()
    else
      error(err)
    end
  end
  history[#history + 1] = po.json.object {
    round = round,
    candidates = candidates,
    best = best,
    accepted = accepted,
    timed_out = timed_out,
    seconds = po.now() - t0,
  }
  print(string.format("round %d: best x = %g (cost %g), %d improved, %d timed out, %.2f s for 8 evaluations",
    round, best.x, best.cost, accepted, timed_out, po.now() - t0))
end

print(string.format("%d rounds in %.2f s", rounds, po.now() - started))
print(po.json.encode({ best = best, rounds = history }, { sort_keys = true, indent = true }))
