--- `poengine optimize TASK.lua [options]`: runs the optimization cycle on a
--- task file (a Lua file returning a task table; see docs/optimizer.md) and
--- prints the best result, its measured improvement, and where the patch,
--- the event log and the dashboards were written.
local M = {
  summary = "optimize code with an LLM or a search strategy (a task file follows)",
}

local usage = [[
usage: poengine optimize TASK.lua [options]
  --cycles N        stop after N cycles (overrides the task's budget)
  --budget-usd X    stop once the LLM calls cost X dollars
  --provider NAME   openai | anthropic | ollama (the key or host from the environment)
  --model NAME      the model to ask (default: the task's, else the provider's usual small one)
  --resume          continue the task's last run from its checkpoint
  --apply           write the best result into the workdir (default: a patch file only)
  --output DIR      where the run's store, events, patch and dashboards go
  --quiet           print only the result
  --verbose         print every candidate's outcome
]]

local default_models = {
  openai = "gpt-4o-mini",
  anthropic = "claude-3-5-haiku-latest",
  ollama = "llama3.1",
}

local function fail(msg)
  io.stderr:write("poengine optimize: ", msg, "\n")
  return 2
end

-- The provider named on the command line, or the first whose key or host the
-- environment holds.
local function pick_provider(name)
  if name then
    if not default_models[name] then
      return nil, "unknown provider '" .. name .. "' (openai, anthropic or ollama)"
    end
    return name
  end
  if os.getenv("OPENAI_API_KEY") then
    return "openai"
  elseif os.getenv("ANTHROPIC_API_KEY") then
    return "anthropic"
  elseif os.getenv("OLLAMA_HOST") then
    return "ollama"
  end
  return nil
end

function M.main(args)
  local po = require "poengine"
  local opts = {}
  local path
  local i = 1
  local function value(name)
    i = i + 1
    if args[i] == nil then
      error({ usage_error = "option " .. name .. " needs a value" })
    end
    return args[i]
  end
  local ok, perr = pcall(function()
    while i <= #args do
      local a = args[i]
      if a == "--cycles" then
        opts.cycles = tonumber(value(a)) or 0
      elseif a == "--budget-usd" then
        opts.usd = tonumber(value(a)) or -1
      elseif a == "--provider" then
        opts.provider = value(a)
      elseif a == "--model" then
        opts.model = value(a)
      elseif a == "--resume" then
        opts.resume = true
      elseif a == "--apply" then
        opts.apply = true
      elseif a == "--output" then
        opts.output = value(a)
      elseif a == "--quiet" then
        opts.quiet = true
      elseif a == "--verbose" then
        opts.verbose = true
      elseif a == "-h" or a == "--help" then
        opts.help = true
      elseif a:sub(1, 1) == "-" then
        error({ usage_error = "unknown option " .. a })
      elseif path then
        error({ usage_error = "one task file only" })
      else
        path = a
      end
      i = i + 1
    end
  end)
  if not ok then
    if type(perr) == "table" and perr.usage_error then
      io.stderr:write("poengine optimize: ", perr.usage_error, "\n", usage)
      return 2
    end
    error(perr, 0)
  end
  if opts.help then
    io.write(usage)
    return 0
  end
  if not path then
    io.stderr:write(usage)
    return 2
  end
  if opts.cycles and (opts.cycles ~= math.floor(opts.cycles) or opts.cycles < 1) then
    return fail("--cycles needs a whole number of at least 1")
  end
  if opts.usd and opts.usd < 0 then
    return fail("--budget-usd needs a number of dollars")
  end

  local task, err = po.optimizer.load_task(path)
  if not task then
    return fail(err)
  end
  task.budget = task.budget or {}
  if opts.cycles then
    task.budget.cycles = opts.cycles
  end
  if opts.usd then
    task.budget.usd = opts.usd
  end
  if opts.apply then
    task.apply = true
  end
  if opts.model then
    task.model = opts.model
  end

  local router = task.router
  task.router = nil
  local method = task.method or "llm-rewrite"
  if (method == "llm-rewrite" or method == "llm-diff") and (opts.provider or not router) then
    local provider, perr2 = pick_provider(opts.provider)
    if not provider then
      return fail(perr2 or "this task asks an LLM: set OPENAI_API_KEY, ANTHROPIC_API_KEY or OLLAMA_HOST, "
        .. "or give the task a router")
    end
    task.model = task.model or default_models[provider]
    local cache = po.cache.open { path = po.optimizer.home() .. "/cache", namespace = "optimize", ttl = 0,
      max_entries = 100000 }
    router = po.llm.router { deployments = { { provider = provider } }, cache = cache or false,
      budget = task.budget.usd and { usd = task.budget.usd } or nil }
  end

  local tty = po.isatty(1)
  local live = tty and not opts.quiet
  local result, rerr = po.optimizer.run(task, {
    router = router,
    -- The router records its LLM calls in po.metrics.global(): make that the
    -- run's collector, so they reach the cycles and the dashboards.
    global_collector = true,
    resume = opts.resume,
    output = opts.output,
    quiet = opts.quiet,
    verbose = opts.verbose,
    status = live and function(text)
      io.stdout:write("\r\27[K", text)
      io.stdout:flush()
    end or nil,
    progress = function(text)
      io.stdout:write(live and "\r\27[K" or "", text, "\n")
      io.stdout:flush()
    end,
  })
  if not result then -- the run could not start: an error, not a usage error
    io.stderr:write("poengine optimize: ", rerr, "\n")
    return 1
  end

  local function fmt(x)
    return po.optimizer.format_score(x)
  end
  local function interval(lo, hi)
    return lo and string.format(" [%.3g, %.3g]", lo, hi) or ""
  end
  -- A final check that does not confirm the accepted chain heads the
  -- summary: it is the one thing a reader must not miss.
  if result.warning then
    print("WARNING: " .. result.warning)
  end
  print(string.format("%s: %d cycle%s, stopped: %s", task.id, result.cycles, result.cycles == 1 and "" or "s",
    result.stopped))
  if #result.accepted == 0 then
    print("no candidate was judged better than its baseline (timed side by side, interleaved)")
  end
  local better = task.objective and task.objective.direction == "max" and "higher" or "faster"
  for _, a in ipairs(result.accepted) do
    print(string.format("  cycle %d: accepted %s, %.3gx%s %s than the version before it (score %s)",
      a.cycle, a.id, a.speedup or 0, interval(a.ci_low, a.ci_high), better, fmt(a.score)))
  end
  if result.chain_speedup then
    local f = result.final
    print(string.format("accepted chain: %.3gx (the product of the cycles' speedups); final check: %s",
      result.chain_speedup, f and string.format("%.3gx%s, %s, %d runs each", f.speedup, interval(f.ci_low, f.ci_high),
        f.verdict, f.runs or 0) or "not made"))
  end
  if result.final then
    print(string.format("best: %s against the original's %s (medians of the final check, timed side by side)",
      fmt(result.final.best), fmt(result.final.original)))
  end
  if result.best_params then
    print("best parameters: " .. po.json.encode(result.best_params, { sort_keys = true }))
  end
  local spent = result.spent
  print(string.format("LLM: $%.4f, %d tokens", spent.usd, spent.tokens))
  if result.applied then
    print("applied to " .. task.workdir)
  elseif result.apply_error then
    print("could not apply: " .. result.apply_error)
  end
  if result.patch then
    print("patch:      " .. result.patch)
  end
  print("events:     " .. result.events)
  local d = po.dashboard.new(result.collector, { title = "poengine optimize: " .. task.id })
  for _, ext in ipairs { "md", "html" } do
    local out = result.out_dir .. "/dashboard." .. ext
    local wrote, werr = d:write(out)
    print("dashboard:  " .. (wrote and out or ("not written: " .. tostring(werr))))
  end
  return result.stopped and result.stopped:match("^error") and 1 or 0
end

return M
