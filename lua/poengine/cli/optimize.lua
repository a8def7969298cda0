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
  --provider KIND   openai | anthropic | ollama | a kind a script added (default: the first
                    whose key or base URL the environment holds; see docs/providers.md)
  --model NAME      the model to ask (default: the task's, else the provider's usual small one)
  --base-url URL    the server to ask, e.g. http://localhost:8000/v1 for vLLM (default: the
                    provider's variable, OPENAI_BASE_URL, ANTHROPIC_BASE_URL or OLLAMA_HOST)
  --resume          continue the task's last run from its checkpoint
  --apply           write the best result into the workdir (default: a patch file only)
  --output DIR      where the run's store, events, patch and dashboards go
  --serve ADDR      serve the run while it goes on, as poengine serve does (live page,
                    /metrics, JSON API) at HOST:PORT or PORT; POENGINE_TOKEN for a token
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

local function set(name)
  local v = os.getenv(name)
  return v ~= nil and v ~= ""
end

-- The provider named on the command line, or the first whose key or base
-- URL the environment holds; with only --base-url, an OpenAI-compatible
-- server (what most servers people run speak).
local function pick_provider(name, base_url)
  if name then
    local kinds = require("poengine.llm.provider").kinds()
    for _, k in ipairs(kinds) do
      if k == name and k ~= "lua" then
        return name
      end
    end
    kinds[#kinds] = nil -- "lua" needs a function: not from the command line
    return nil, "unknown provider '" .. name .. "' (" .. table.concat(kinds, ", ") .. ")"
  end
  for _, env in ipairs { { "OPENAI_API_KEY", "openai" }, { "ANTHROPIC_API_KEY", "anthropic" },
    { "OPENAI_BASE_URL", "openai" }, { "ANTHROPIC_BASE_URL", "anthropic" }, { "OLLAMA_HOST", "ollama" } } do
    if set(env[1]) then
      return env[2]
    end
  end
  if base_url then
    return "openai"
  end
  return nil
end

--- Starts serving the run of `task` (poengine optimize --serve): the home's
--- runs, or only this run when --output puts it elsewhere. Says where on
--- stdout. Returns the server, or nil, message.
function M.serve_run(po, task, opts)
  local where
  if opts.output then
    local dir = opts.output:gsub("/+$", "")
    if dir:sub(1, 1) ~= "/" then
      dir = (os.getenv("PWD") or ".") .. "/" .. dir
    end
    where = { runs = { [task.id] = dir } }
  else
    where = { home = po.optimizer.home() }
  end
  local token = os.getenv("POENGINE_TOKEN")
  where.listen, where.token = opts.serve, token ~= "" and token or nil
  local srv, err = require("poengine.serve").start(where)
  if not srv then
    return nil, err
  end
  io.stdout:write("serving: ", srv.url, "/runs/", task.id, "\n")
  io.stdout:flush()
  return srv
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
      elseif a == "--base-url" then
        opts.base_url = value(a)
      elseif a == "--resume" then
        opts.resume = true
      elseif a == "--apply" then
        opts.apply = true
      elseif a == "--output" then
        opts.output = value(a)
      elseif a == "--serve" then
        opts.serve = value(a)
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
  if opts.serve then
    local ok_addr, aerr = require("poengine.serve").parse_listen(opts.serve)
    if not ok_addr then
      return fail("--serve: " .. aerr)
    end
  end

  local task, err = po.optimizer.load_task(path)
  if not task then
    return fail(err)
  end
  -- A mistake in the task file is the user's: one line naming the file,
  -- the line and what was expected, not a traceback from the optimizer.
  local checked, cerr = pcall(po.optimizer.check_task, task)
  if not checked then
    io.stderr:write("poengine optimize: ", require("poengine.optimizer.task").explain(path, cerr), "\n")
    return 2
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
  local show_status -- set below: the live line or the plain one
  local method = task.method or "llm-rewrite"
  if (method == "llm-rewrite" or method == "llm-diff") and (opts.provider or opts.base_url or not router) then
    local provider, perr2 = pick_provider(opts.provider, opts.base_url)
    if not provider then
      return fail(perr2 or "this task asks an LLM: set OPENAI_API_KEY, ANTHROPIC_API_KEY or OLLAMA_HOST, "
        .. "give --provider and --base-url, or give the task a router")
    end
    task.model = task.model or default_models[provider]
    if not task.model then
      return fail("--provider " .. provider .. " has no usual model: give --model")
    end
    if opts.base_url and not opts.base_url:match("^https?://") then
      return fail("--base-url needs an http:// or https:// URL, got '" .. opts.base_url .. "'")
    end
    local cache = po.cache.open { path = po.optimizer.home() .. "/cache", namespace = "optimize", ttl = 0,
      max_entries = 100000 }
    router = po.llm.router { deployments = { { provider = provider, base_url = opts.base_url } },
      cache = cache or false,
      budget = task.budget.usd and { usd = task.budget.usd } or nil,
      -- Waiting on a rate limit or the budget shows like any other phase.
      on_wait = function(text) if show_status then show_status(text) end end }
  end

  local tty = po.isatty(1)
  local live = tty and not opts.quiet
  -- On a terminal the status is a live line redrawn in place. Elsewhere (a
  -- pipe, a log file) a phase that lasts more than a second gets one plain
  -- line, so a long timing phase or the final check is never silent.
  local plain_status
  local current, shown -- the phase in progress, and the last one given a line
  if not tty and not opts.quiet then
    local function phase(text)
      return text:match("^(cycle %d+ of %d+: %a+)") or text:match("^([^:,]+: %a+)") or text:match("^([^,]+)")
    end
    plain_status = function(text)
      local key = phase(text)
      if key ~= current then
        current = key
        po.after(1):on_settle(function()
          if current == key and shown ~= key then
            shown = key
            io.stdout:write(text, " ...\n")
            io.stdout:flush()
          end
        end)
      end
    end
  end
  show_status = live and function(text)
    io.stdout:write("\r\27[K", text)
    io.stdout:flush()
  end or plain_status
  local optimizer, rerr = po.optimizer.new(task, {
    router = router,
    -- The router records its LLM calls in po.metrics.global(): make that the
    -- run's collector, so they reach the cycles and the dashboards.
    global_collector = true,
    resume = opts.resume,
    output = opts.output,
    quiet = opts.quiet,
    verbose = opts.verbose,
    status = show_status,
    progress = function(text)
      current = nil -- a progress line ends the phase that was in progress
      io.stdout:write(live and "\r\27[K" or "", text, "\n")
      io.stdout:flush()
    end,
  })
  -- Served once the run's directory and event log exist, so the address it
  -- prints answers for the run from the first request on.
  local server, result
  if optimizer and opts.serve then
    local serr
    server, serr = M.serve_run(po, task, opts)
    if not server then
      io.stderr:write("poengine optimize: --serve: ", tostring(serr), "\n")
      return 1
    end
  end
  if optimizer then
    result, rerr = optimizer:run()
  end
  current = nil -- the run is over: no phase line may follow its summary
  show_status = nil
  if server then
    server:close()
  end
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
