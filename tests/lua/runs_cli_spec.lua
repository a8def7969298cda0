-- `poengine runs` (the real binary) on a home holding runs that real
-- `poengine optimize` processes made: list, show, compare (and the bests
-- timed against each other), export, rm (of a run whose process is still
-- running too), and the exit statuses of mistakes.
local po = require "poengine"
local proc = require "tests.tools.proc"
local spin_runs = require "tests.tools.spin_runs"
local q = proc.quote
local fmt = require "poengine.dashboard.fmt"

local function escape(s)
  return (s:gsub("[%^%$%(%)%%%.%[%]%*%+%-%?]", "%%%0"))
end

local function lines(text)
  local out = {}
  for line in text:gmatch("([^\n]*)\n") do
    out[#out + 1] = line
  end
  return out
end

local function exists(path)
  return os.execute("test -e " .. q(path)) == 0
end

describe("poengine runs", function()
  local dir, home, alpha_task, env

  -- `poengine runs ARGS` with POENGINE_HOME set to the test's home.
  local function runs(args)
    return proc.sh(env .. q(proc.bin) .. " runs " .. args)
  end

  local function optimize(task)
    local status, out, err = proc.sh(env .. q(proc.bin) .. " optimize --quiet " .. q(task))
    assert.are.equal(0, status, out .. err)
  end

  -- "2.00x faster [1.97, 2.02]" from a model's best.
  local function best_text(id)
    local status, out, err = runs("export " .. id .. " --format json")
    assert.are.equal(0, status, err)
    local b = assert(po.json.decode(out)).best
    return ("%.2fx faster [%.2f, %.2f]"):format(b.speedup, b.ci_low, b.ci_high), b
  end

  setup(function()
    dir = proc.tempdir()
    home = dir .. "/home"
    env = "POENGINE_HOME=" .. q(home) .. " "
    assert(os.execute("mkdir -p " .. q(home .. "/runs/broken") .. " " .. q(home .. "/runs/empty")) == 0)
    assert(po.write_file(home .. "/runs/broken/events.jsonl", "\0garbage\n"))
    alpha_task = spin_runs.task_file(dir, { id = "alpha", points = { 2000, 8000 } })
    optimize(alpha_task)
    optimize(spin_runs.task_file(dir, { id = "beta", points = { 16000, 1 } }))
  end)

  teardown(function()
    proc.rmdir(dir)
  end)

  it("lists the runs newest first, aligned, with the unreadable one and why", function()
    local status, out, err = runs("list")
    assert.are.equal(0, status, err)
    assert.are.equal("", err)
    local l = lines(out)
    assert.are.equal(7, #l, out)
    assert.matches("^  id +task +started %(UTC%) +cycles +status +best +cost$", l[1])
    local date = "%d%d%d%d%-%d%d%-%d%d %d%d:%d%d:%d%d"
    assert.matches("^  beta +beta +" .. date .. " +1 +finished +1%.00x %(the same%) +%$0, 0 tokens$", l[3])
    assert.matches("^  alpha +alpha +" .. date .. " +1 +finished +" .. escape(best_text("alpha")) .. " +%$0, 0 tokens$",
      l[4])
    assert.matches("^  broken +– +– +– +unreadable +– +–$", l[5])
    assert.are.same({ "unreadable:", "  broken: its event log holds no readable event" }, { l[6], l[7] })
    -- The columns line up: each row's status starts in the header's column.
    local function column(line, word)
      local at = assert(line:find(word, 1, true), word)
      return fmt.width(line:sub(1, at - 1))
    end
    local want = column(l[1], "status")
    assert.are.same({ want, want, want }, { column(l[3], "finished"), column(l[4], "finished"),
      column(l[5], "unreadable") })
  end)

  it("lists as JSON, and reads another home with --home", function()
    local status, out, err = proc.sh(q(proc.bin) .. " runs list --json --home " .. q(home))
    assert.are.equal(0, status, err)
    local list = assert(po.json.decode(out))
    assert.are.same({ "beta", "alpha", "broken" }, { list[1].id, list[2].id, list[3].id })
    assert.are.equal("finished", list[2].status)
    assert.matches("^%d%d%d%d%-%d%d%-%d%dT%d%d:%d%d:%d%d%.%d%d%dZ$", list[2].started)
    assert.are.equal("unreadable", list[3].status)
    assert.are.equal("its event log holds no readable event", list[3].reason)
  end)

  it("shows a run: summary, accepted chain, outcomes per cycle and the candidates", function()
    local status, out, err = runs("show alpha")
    assert.are.equal(0, status, err)
    local text, b = best_text("alpha")
    assert.matches("^run alpha\n", out)
    assert.matches("\n  status +finished\n", out)
    assert.matches("\n  best +" .. escape(text) .. " by the final check %(faster, %d+ runs each%)\n", out)
    assert.is_true(b.speedup > 1.5)
    assert.matches("\naccepted chain: original → c1%.1\n", out)
    assert.matches("\n +1 +2 +0 +0 +1 +0 +1\n", out) -- cycle 1: 2 proposed, 1 slower, 1 faster
    assert.matches("\n +1 +c1%.1 %* +rounds=2000 +timing +faster +%d%.%d%dx %[%d%.%d%d, %d%.%d%d%] +–\n", out)
    assert.matches("\n +1 +c1%.2 +rounds=8000 +timing +slower +0%.%d%dx", out)

    status, out, err = runs("show beta")
    assert.are.equal(0, status, err)
    assert.matches("\n  best +1%.00x %(the same%) by the cycles' scores\n", out)
    assert.matches("\naccepted chain: original\n", out)
    assert.matches("\n +1 +2 +0 +check 1 +1 +0 +0\n", out)
    assert.matches("\n +1 +c1%.2 +rounds=1 +check +– +– +–\n", out)
  end)

  it("compares two runs side by side, and times their bests against each other", function()
    local status, out, err = runs("compare alpha beta")
    assert.are.equal(0, status, err)
    assert.matches("^ +alpha +beta\n", out)
    assert.matches("\n  best +" .. escape(best_text("alpha")) .. " +1%.00x %(the same%)\n", out)
    assert.matches("\n  chain length +1 +0\n", out)
    assert.matches("\n  chain +original → c1%.1 +original\n", out)
    assert.matches("\n  failed +0 +check 1\n", out)
    assert.matches("\n  faster +1 +0\n", out)

    -- beta's best is the original (4000 rounds), alpha's does 2000: twice as slow.
    status, out, err = runs("compare alpha beta --time --task " .. q(alpha_task))
    assert.are.equal(0, status, err)
    assert.matches("timing alpha's best beside beta's", err, 1, true)
    assert.matches("\ntimed side by side: beta's best beside alpha's: [12]%.%d%dx slower %[[%d.]+, [%d.]+%]\n"
      .. "  verdict slower", out)

    status, _, err = runs("compare alpha beta --time")
    assert.are.equal(2, status)
    assert.matches("'runs compare --time' needs --task FILE", err, 1, true)
    status, _, err = runs("compare alpha beta --time --task " .. q(dir .. "/nope.lua"))
    assert.are.equal(1, status)
    assert.matches("nope.lua", err, 1, true)
  end)

  it("exports a run as JSON to a file and as CSV with a row per candidate", function()
    local file = dir .. "/alpha.json"
    local status, out, err = runs("export alpha --format json -o " .. q(file))
    assert.are.equal(0, status, err)
    assert.are.equal("", out)
    local doc = assert(po.json.decode(proc.read(file)))
    assert.are.equal("alpha", doc.id)
    assert.are.same({ "original", "c1.1" }, doc.chain)
    status, out, err = runs("export beta --format csv")
    assert.are.equal(0, status, err)
    local rows = spin_runs.parse_csv(out)
    assert.are.equal(3, #rows)
    assert.are.same({ "beta", "1", "c1.1", "original", "rounds=16000", "", "slower" },
      { unpack(rows[2], 1, 7) })
    assert.are.same({ "beta", "1", "c1.2", "original", "rounds=1", "check", "" }, { unpack(rows[3], 1, 7) })
  end)

  it("refuses bad ids and usage mistakes with status 2, a missing run with 1", function()
    for _, args in ipairs { "rm ../x", "show a/b", "export .. --format json", "compare alpha ../beta" } do
      local status, out, err = runs(args)
      assert.are.equal(2, status, args)
      assert.are.equal("", out)
      assert.matches("is not a run id", err, 1, true)
      assert.matches("usage: poengine runs", err, 1, true)
    end
    local cases = {
      { "", "a command is needed" }, { "frob", "unknown command 'frob'" },
      { "list --force", "unknown option '--force' for 'runs list'" }, { "show", "'runs show' needs ID" },
      { "show alpha beta", "unexpected argument 'beta'" }, { "export alpha", "needs --format json or --format csv" },
      { "export alpha --format xml", "--format must be json or csv, got 'xml'" },
      { "list --home", "option --home needs a value" },
    }
    for _, c in ipairs(cases) do
      local status, _, err = runs(c[1])
      assert.are.equal(2, status, c[1])
      assert.matches(c[2], err, 1, true)
    end
    local status, _, err = runs("show nope")
    assert.are.equal(1, status)
    assert.matches("no run 'nope' in " .. home .. "/runs (runs there: beta, alpha, broken)", err, 1, true)
    status, _, err = runs("show broken")
    assert.are.equal(1, status)
    assert.matches("run 'broken' cannot be read", err, 1, true)
    status = runs("--help")
    assert.are.equal(0, status)
  end)

  it("refuses to remove a run whose optimizer is still running, then removes exactly that run", function()
    local gate = spin_runs.gate(dir)
    local child = po.run { argv = { proc.bin, "optimize", "--quiet",
      spin_runs.task_file(dir, { id = "gamma", points = { 2000 }, gate = gate }) }, env = { POENGINE_HOME = home },
      timeout = 120 }
    finally(function()
      if not child:done() then
        child:cancel()
      end
    end)
    -- The child's proposer writes to the FIFO once its run has started.
    local ready = po.run_sync { argv = { "cat", gate.ready }, timeout = 60 }
    assert.are.equal("ready\n", ready.stdout)

    local status, out, err = runs("list")
    assert.are.equal(0, status, err)
    assert.matches("\n  gamma +gamma +[%d%- :]+ +0 +running +", out)
    status, out, err = runs("rm gamma")
    assert.are.equal(1, status)
    assert.are.equal("", out)
    assert.are.equal("poengine runs: run 'gamma' is running; stop it first, or force the removal (--force)\n", err)
    assert.is_true(exists(home .. "/runs/gamma/events.jsonl"))

    local released = po.run_sync { argv = { "sh", "-c", 'echo go > "$1"', "sh", gate.release }, timeout = 60 }
    assert.are.equal("ok", released.status)
    local r = child:wait()
    assert.are.equal("ok", r.status, r.stderr)

    status, out, err = runs("list --json")
    assert.are.equal(0, status, err)
    local list = assert(po.json.decode(out))
    assert.are.same({ "gamma", "finished" }, { list[1].id, list[1].status })

    status, out, err = runs("rm gamma")
    assert.are.equal(0, status, err)
    assert.are.equal("removed run gamma\n", out)
    assert.is_false(exists(home .. "/runs/gamma"))
    local ids = {}
    for _, s in ipairs(assert(po.json.decode(select(2, runs("list --json"))))) do
      ids[#ids + 1] = s.id
    end
    assert.are.same({ "beta", "alpha", "broken" }, ids)
    assert.is_true(exists(home .. "/runs/empty"))
    status, _, err = runs("rm gamma")
    assert.are.equal(1, status)
    assert.matches("no run 'gamma'", err, 1, true)
  end)
end)
