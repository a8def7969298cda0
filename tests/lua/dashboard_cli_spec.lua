-- `poengine dashboard`: a real store written by a real collector, every
-- format, options, usage errors, and --watch redrawing while another process
-- appends cycles, on a pipe and on a terminal (a pty from script(1)).
local po = require "poengine"
local proc = require "tests.tools.proc"
local q = proc.quote

local read = proc.read

-- A store at a new temporary directory with n cycles in it, written by a
-- child poengine process (as a flow would).
local function append_cycles(dir, n, prefix)
  local script = proc.tempfile(([[
    local col = assert(po.metrics.collector { path = %q, name = "cli" })
    for i = 1, %d do
      local id = %q .. i
      col:start_cycle(id, { n = i })
      col:record_llm_call(id, { cache_hit = i %% 2 == 0, tokens_in = 10, tokens_out = 5, cost = 0.001 })
      col:record_validation(id, 0.01 * i)
      col:record_score(id, i, i)
      col:end_cycle(id, i %% 3 ~= 0, i %% 3 == 0 and "broke|here" or nil)
    end
    col:close()
  ]]):format(dir, n, prefix or "c"), ".lua")
  local status, _, err = proc.poengine(q(script))
  os.remove(script)
  assert.are.equal(0, status, err)
end

local function store(n)
  local dir = proc.tempdir()
  append_cycles(dir, n)
  return dir
end

local function count(s, pattern)
  return select(2, s:gsub(pattern, ""))
end

describe("poengine dashboard", function()
  local dir

  setup(function()
    dir = store(7)
  end)

  teardown(function()
    proc.rmdir(dir)
  end)

  it("prints the text dashboard of a store", function()
    local status, out, err = proc.poengine("dashboard --store " .. q(dir))
    assert.are.equal(0, status, err)
    assert.are.equal("", err)
    assert.truthy(out:find("^poengine dashboard"))
    assert.truthy(out:find(dir .. " \194\183 7 cycles", 1, true))
    assert.truthy(out:find("Cycles%s+7"))
    assert.truthy(out:find("broke|here", 1, true))
  end)

  it("honours POENGINE_HOME as the default store", function()
    local status, out, err = proc.sh("POENGINE_HOME=" .. q(dir) .. " " .. q(proc.bin) .. " dashboard")
    assert.are.equal(0, status, err)
    assert.truthy(out:find("Cycles%s+7"))
  end)

  it("writes every format, to stdout or to a file named by -o", function()
    -- each format's own way of saying "7 cycles"
    local says = {
      text = function(out) assert.truthy(out:find("^poengine dashboard.-Cycles%s+7%s")) end,
      markdown = function(out) assert.truthy(out:find("^# poengine dashboard\n.-| %*%*Cycles%*%* | 7 |")) end,
      json = function(out) assert.are.equal(7, assert(po.json.decode(out)).sections.overall.total_cycles) end,
      csv = function(out)
        local _, newlines = out:gsub("\n", "")
        assert.are.equal(8, newlines) -- the header and one row per cycle
        assert.truthy(out:find("^cycle_id,start_time,"))
      end,
      html = function(out) assert.truthy(out:find("^<!DOCTYPE html>.-</html>%s*$")) end,
      prometheus = function(out)
        local total = 0
        for n in out:gmatch('\npo_dashboard_cycles{status="%a+"} (%d+)') do total = total + tonumber(n) end
        assert.are.equal(7, total) -- successful, failed and active
      end,
    }
    for f, check in pairs(says) do
      local status, out, err = proc.poengine("dashboard --store " .. q(dir) .. " --format " .. f)
      assert.are.equal(0, status, f .. ": " .. err)
      check(out)
    end
    local out_dir = proc.tempdir()
    for ext, check in pairs {
      html = "^<!DOCTYPE html>",
      md = "^# poengine dashboard",
      json = '^{\n  "generated_at"',
      csv = "^cycle_id,start_time,",
      prom = "^# HELP po_dashboard_",
      txt = "^poengine dashboard",
    } do
      local path = out_dir .. "/dash." .. ext
      local status, out, err = proc.poengine("dashboard --store " .. q(dir) .. " -o " .. q(path))
      assert.are.equal(0, status, err)
      assert.are.equal("", out)
      assert.truthy(read(path):find(check), ext)
    end
    local status = proc.poengine("dashboard --store " .. q(dir) .. " --format=json --output=" .. q(out_dir .. "/x.html"))
    assert.are.equal(0, status)
    assert.truthy(po.json.decode(read(out_dir .. "/x.html")))
    proc.rmdir(out_dir)
  end)

  it("shows only the sections asked for, in that order, and the recent count", function()
    local status, out = proc.poengine("dashboard --store " .. q(dir) .. " --sections recent,overall --recent 2 --title 'My run'")
    assert.are.equal(0, status)
    assert.truthy(out:find("^My run"))
    assert.truthy(out:find("Recent cycles", 1, true) < out:find("Overall", 1, true))
    assert.falsy(out:find("Validation", 1, true))
    assert.truthy(out:find("c7", 1, true) and out:find("c6", 1, true))
    assert.falsy(out:find("c5", 1, true))
  end)

  it("exits 2 on a usage error and 1 when the store cannot be read", function()
    for _, args in ipairs {
      "--format nope", "--sections overall,nope", "--watch 0", "--watch", "--bogus", "extra", "--recent -1",
      "--watch 1 --format html",
    } do
      local status, out, err = proc.poengine("dashboard --store " .. q(dir) .. " " .. args)
      assert.are.equal(2, status, args)
      assert.are.equal("", out)
      assert.truthy(err:find("^poengine dashboard: "), args)
    end
    local status, out, err = proc.poengine("dashboard --store /nonexistent/poengine-store")
    assert.are.equal(1, status)
    assert.are.equal("", out)
    assert.are.equal("poengine dashboard: no store at /nonexistent/poengine-store\n", err)
    status, out = proc.poengine("dashboard --help")
    assert.are.equal(0, status)
    assert.truthy(out:find("--watch SECONDS", 1, true))
    status, out = proc.poengine("--help")
    assert.truthy(out:find("dashboard", 1, true))
  end)

  it("--watch redraws while another process appends", function()
    local d = store(3)
    local out, errf = os.tmpname(), os.tmpname()
    -- Redraw every 0.2 s on a pipe; append cycles once two frames are out;
    -- stop it once a frame shows them.
    local _, pid_text = proc.sh(q(proc.bin) .. " dashboard --watch 0.2 --store " .. q(d) .. " > " .. q(out)
      .. " 2> " .. q(errf) .. " & echo $!")
    local pid = assert(tonumber(pid_text))
    local function wait_for(pattern, n)
      for _ = 1, 200 do
        if count(read(out), pattern) >= n then
          return true
        end
        po.sleep(0.05)
      end
      return false
    end
    assert.is_true(wait_for("\194\183 3 cycles", 2))
    append_cycles(d, 2, "late")
    assert.is_true(wait_for("\194\183 5 cycles", 1))
    os.execute("kill " .. pid)
    local text = read(out)
    assert.falsy(text:find("\27", 1, true)) -- no terminal codes on a pipe
    assert.truthy(text:find("late2", 1, true))
    assert.are.equal("", read(errf))
    os.remove(out)
    os.remove(errf)
    proc.rmdir(d)
  end)

  it("--watch on a terminal redraws in place and stops cleanly on Ctrl-C", function()
    local d = store(2)
    -- script(1) runs it on a pty; a Ctrl-C typed after a second reaches it
    -- as a terminal's does (the pty sends SIGINT to the foreground group).
    local status, out, err = proc.sh("(sleep 1.5; printf '\\003'; sleep 1) | script -qec "
      .. q(q(proc.bin) .. " dashboard --watch 0.3 --store " .. q(d)) .. " /dev/null")
    proc.rmdir(d)
    assert.are.equal(130, status, err) -- ended by SIGINT, as Ctrl-C ends a program
    assert.truthy(out:find("^\27%[H\27%[2J"), "clears the screen first")
    assert.truthy(count(out, "\27%[H") >= 3, "redraws from the top") -- the clear plus two frames at least
    assert.truthy(count(out, "Cycles%s+2") >= 2)
    -- The last frame is whole: it ends by clearing below it, then the ^C echo.
    assert.truthy(out:find("\27%[J%^C%s*$"), out:sub(-200))
    assert.falsy(out:find("traceback", 1, true))
    assert.falsy(out:find("poengine:", 1, true))
  end)

  it("leaves out the profile section unless asked for it", function()
    local _, out = proc.poengine("dashboard --store " .. q(dir))
    assert.falsy(out:find("Profile", 1, true))
    _, out = proc.poengine("dashboard --store " .. q(dir) .. " --sections overall,profile")
    assert.truthy(out:find("Profile", 1, true))
  end)
end)

describe("poengine dashboard finds runs", function()
  local home

  setup(function()
    home = proc.tempdir()
    assert(os.execute("mkdir -p " .. q(home .. "/runs/first/store") .. " " .. q(home .. "/runs/second/store")) == 0)
    append_cycles(home .. "/runs/first/store", 2, "f")
    -- A later write: the second run is the most recent.
    assert(os.execute("sleep 0.05") == 0)
    append_cycles(home .. "/runs/second/store", 5, "s")
  end)

  teardown(function()
    proc.rmdir(home)
  end)

  local function dash(args)
    return proc.sh("POENGINE_HOME=" .. q(home) .. " " .. q(proc.bin) .. " dashboard " .. args)
  end

  it("shows the run named by its id, positional or with --run", function()
    local status, out, err = dash("first")
    assert.are.equal(0, status, err)
    assert.truthy(out:find(home .. "/runs/first/store \194\183 2 cycles", 1, true))
    status, out, err = dash("--run second")
    assert.are.equal(0, status, err)
    assert.truthy(out:find(home .. "/runs/second/store \194\183 5 cycles", 1, true))
    -- A run directory's path works too.
    status, out = dash(q(home .. "/runs/first") .. " --format json")
    assert.are.equal(0, status)
    assert.are.equal(2, assert(po.json.decode(out)).sections.overall.total_cycles)
  end)

  it("with no run named, shows the most recent one and says which", function()
    local status, out, err = dash("")
    assert.are.equal(0, status, err)
    assert.truthy(out:find(home .. "/runs/second/store \194\183 5 cycles", 1, true))
    assert.are.equal("poengine dashboard: run 'second', the most recent of 2 stores in " .. home .. "\n", err)
  end)

  it("names the runs it found when the one asked for is not there", function()
    local status, out, err = dash("thrid")
    assert.are.equal(1, status)
    assert.are.equal("", out)
    assert.are.equal("poengine dashboard: no run 'thrid': looked for " .. home
      .. "/runs/thrid/store (runs there: second, first)\n", err)
  end)

  it("says where it looked when there is nothing", function()
    local empty = proc.tempdir()
    local status, _, err = proc.sh("POENGINE_HOME=" .. q(empty) .. " " .. q(proc.bin) .. " dashboard")
    proc.rmdir(empty)
    assert.are.equal(1, status)
    assert.are.equal("poengine dashboard: no store found: looked for runs in " .. empty .. "/runs/*/store and for a store in "
      .. empty .. " (run an optimizer or a flow first, or name one with --store DIR)\n", err)
    status, _, err = dash("a --store /tmp")
    assert.are.equal(2, status)
    assert.matches("give a run or %-%-store, not both", err)
  end)
end)

