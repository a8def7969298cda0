-- `poengine optimize` (the real binary): its command-line mistakes and the
-- exit status and message of each, the choice of an LLM provider, --apply
-- writing the best into the workdir, and --serve with --output.
local proc = require "tests.tools.proc"
local spin_runs = require "tests.tools.spin_runs"
local q = proc.quote

local function escape(s)
  return (s:gsub("[%^%$%(%)%%%.%[%]%*%+%-%?]", "%%%0"))
end

describe("poengine optimize", function()
  local dir, env, search_task, llm_task

  -- No provider from the environment: each case says what it gives.
  local function optimize(args)
    return proc.sh(env .. q(proc.bin) .. " optimize " .. args)
  end

  setup(function()
    dir = proc.tempdir()
    env = "cd " .. q(dir) .. " && POENGINE_HOME=" .. q(dir .. "/home") .. " env -u OPENAI_API_KEY -u ANTHROPIC_API_KEY"
      .. " -u OPENAI_BASE_URL -u ANTHROPIC_BASE_URL -u OLLAMA_HOST "
    search_task = spin_runs.task_file(dir, { id = "cli-search", points = { 2000 } })
    -- The same task asking an LLM instead of its own list of points.
    llm_task = dir .. "/llm.task.lua"
    local f = assert(io.open(llm_task, "w"))
    f:write("local t = dofile(", ("%q"):format(search_task), ")\nt.id = 'cli-llm'\nt.method = nil\nreturn t\n")
    f:close()
  end)
  teardown(function()
    proc.rmdir(dir)
  end)

  it("refuses command-line mistakes with status 2, saying which", function()
    local usage = "\nusage: poengine optimize TASK.lua %[options%]\n"
    for _, case in ipairs {
      { "", "^usage: poengine optimize TASK.lua" },
      { q(search_task) .. " --cycles", "^poengine optimize: option %-%-cycles needs a value" .. usage },
      { q(search_task) .. " --cycles 0", "^poengine optimize: %-%-cycles needs a whole number of at least 1\n$" },
      { q(search_task) .. " --cycles 1.5", "^poengine optimize: %-%-cycles needs a whole number of at least 1\n$" },
      { q(search_task) .. " --budget-usd lots", "^poengine optimize: %-%-budget%-usd needs a number of dollars\n$" },
      { q(search_task) .. " --frobnicate", "^poengine optimize: unknown option %-%-frobnicate" .. usage },
      { q(search_task) .. " " .. q(llm_task), "^poengine optimize: one task file only" .. usage },
      { q(search_task) .. " --serve nowhere", "^poengine optimize: %-%-serve: 'nowhere' is not HOST:PORT" },
      { q(dir .. "/none.task.lua"), "^poengine optimize: .*none%.task%.lua" },
    } do
      local status, out, err = optimize(case[1])
      assert.are.equal(2, status, case[1] .. ": " .. err)
      assert.are.equal("", out, case[1])
      assert.matches(case[2], err)
    end
  end)

  it("names what is missing when an LLM task has no provider", function()
    for _, case in ipairs {
      { "", "^poengine optimize: this task asks an LLM: set OPENAI_API_KEY, ANTHROPIC_API_KEY or OLLAMA_HOST, "
        .. "give %-%-provider and %-%-base%-url, or give the task a router\n$" },
      { "--provider nosuch", "^poengine optimize: unknown provider 'nosuch' %(openai, anthropic, ollama, azure%)\n$" },
      { "--provider azure", "^poengine optimize: %-%-provider azure has no usual model: give %-%-model\n$" },
      { "--provider openai --base-url ftp://example.org",
        "^poengine optimize: %-%-base%-url needs an http:// or https:// URL, got 'ftp://example.org'\n$" },
    } do
      local status, out, err = optimize(q(llm_task) .. " " .. case[1])
      assert.are.equal(2, status, case[1] .. ": " .. err)
      assert.are.equal("", out)
      assert.matches(case[2], err)
    end
  end)

  it("writes a search task's best point into the workdir with --apply", function()
    local work = dir .. "/work-cli-search"
    assert.are.equal("4000\n", proc.read(work .. "/rounds.txt"))
    local status, out, err = optimize(q(search_task) .. " --apply --quiet")
    assert.are.equal(0, status, out .. err)
    assert.matches("\napplied to " .. escape(work) .. "\n", out)
    assert.are.equal("2000\n", proc.read(work .. "/rounds.txt"))
  end)

  it("serves the run it makes in --output, a directory relative to where it was started", function()
    local status, out, err = optimize(q(search_task) .. " --serve 127.0.0.1:0 --output runs/served --quiet --cycles 1")
    assert.are.equal(0, status, out .. err)
    assert.matches("^serving: http://127%.0%.0%.1:%d+/runs/cli%-search\n", out)
    -- the run went where --output said, relative to the working directory
    assert.matches("\nevents:     runs/served/events%.jsonl\n", out)
    assert.is_true(#proc.read(dir .. "/runs/served/events.jsonl") > 0)
  end)
end)
