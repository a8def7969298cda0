-- Child processes: po.run and po.run_sync, with real processes.
local po = require "poengine"
local proc = require "tests.tools.proc"
local q = proc.quote

local function my_pid()
  local f = assert(io.open("/proc/self/stat"))
  local pid = tonumber(f:read("*a"):match("^(%d+)"))
  f:close()
  return pid
end

-- The state letter of a process ("S", "Z", ...), or nil when it is gone.
local function proc_state(pid)
  local f = io.open("/proc/" .. pid .. "/stat")
  if not f then
    return nil
  end
  local stat = f:read("*a")
  f:close()
  return stat:match("%) (%a)")
end

-- Pids of the live (non-zombie) processes in process group pgid.
local function live_in_group(pgid)
  local r = assert(po.run_sync { argv = { "ps", "-e", "-o", "pid=,pgid=,stat=" } })
  local live = {}
  for pid, group, stat in r.stdout:gmatch("(%d+)%s+(%d+)%s+(%S+)") do
    if tonumber(group) == pgid and not stat:find("Z") then
      live[#live + 1] = tonumber(pid)
    end
  end
  return live
end

local ffi = require "ffi"
ffi.cdef [[ int fcntl(int fd, int cmd, ...); ]]

-- Descriptors open in this process (below 4096), counted from inside it.
local function open_fds()
  -- File handles that nobody closed are closed by their finalizers: run them
  -- first, so that only descriptors still in use are counted.
  collectgarbage("collect")
  collectgarbage("collect")
  local n = 0
  for fd = 0, 4095 do
    if ffi.C.fcntl(fd, 1 --[[F_GETFD]]) >= 0 then
      n = n + 1
    end
  end
  return n
end

local function zombie_children()
  local r = assert(po.run_sync { argv = { "ps", "-o", "pid=,stat=", "--ppid", tostring(my_pid()) } })
  local n = 0
  for _, stat in r.stdout:gmatch("(%d+)%s+(%S+)") do
    if stat:find("Z") then
      n = n + 1
    end
  end
  return n
end

describe("po.run", function()
  it("returns a future of the result table", function()
    local fut = po.run { argv = { "sh", "-c", "echo out; echo err >&2; exit 3" } }
    assert.is_true(po.is_future(fut))
    local r = fut:wait()
    assert.are.equal("failed", r.status)
    assert.are.equal(3, r.code)
    assert.is_nil(r.signal)
    assert.are.equal("out\n", r.stdout)
    assert.are.equal("err\n", r.stderr)
    assert.is_false(r.truncated)
    assert.is_true(r.duration > 0)
    assert.is_true(r.pid > 0)
  end)

  it("reports exit 0 as ok and a signal by name", function()
    assert.are.equal("ok", po.run_sync { argv = { "true" } }.status)
    local r = po.run_sync { cmd = "kill -KILL $$", shell = true }
    assert.are.equal("failed", r.status)
    assert.are.equal("SIGKILL", r.signal)
    assert.is_nil(r.code)
  end)

  it("gives status error and a clear message for a missing or non-executable command", function()
    local r = po.run_sync { argv = { "no-such-command-xyz", "arg" } }
    assert.are.equal("error", r.status)
    assert.are.equal("cannot execute 'no-such-command-xyz': No such file or directory", r.error)
    local plain = os.tmpname()
    r = po.run_sync { argv = { plain } }
    os.remove(plain)
    assert.are.equal("error", r.status)
    assert.matches("cannot execute '.*': Permission denied", r.error)
    r = po.run_sync { argv = { "true" }, cwd = "/no/such/dir" }
    assert.are.equal("error", r.status)
    assert.are.equal("cannot change directory to '/no/such/dir': No such file or directory", r.error)
  end)

  it("passes stdin, cwd and the environment", function()
    local r = po.run_sync { argv = { "cat" }, stdin = "line one\nline two\n" }
    assert.are.equal("line one\nline two\n", r.stdout)
    r = po.run_sync { argv = { "pwd" }, cwd = "/tmp" }
    assert.are.equal("/tmp\n", r.stdout)
    r = po.run_sync { argv = { "sh", "-c", 'echo "$PO_A:$PO_B:${HOME:-unset}"' }, env = { PO_A = "a", PO_B = 2, HOME = false } }
    assert.are.equal("a:2:unset\n", r.stdout)
    r = po.run_sync { argv = { "/usr/bin/env" }, inherit_env = false, env = { ONLY = "this" } }
    assert.are.equal("ONLY=this\n", r.stdout)
    r = po.run_sync { argv = { "/usr/bin/env" }, inherit_env = false }
    assert.are.equal("", r.stdout)
  end)

  it("runs a command line only with shell = true", function()
    assert.are.equal("a b\n", po.run_sync { cmd = "echo a b", shell = true }.stdout)
    assert.has_error(function() po.run { cmd = "echo a" } end,
      "po.run: cmd needs shell = true (a command line never goes to a shell implicitly); or pass argv = {...}")
  end)

  it("raises on a bad spec, naming the function and the field", function()
    assert.has_error(function() po.run "ls" end, "po.run: spec must be a table, got string")
    assert.has_error(function() po.run { argv = { "ls" }, timout = 1 } end, "po.run: unknown option 'timout'")
    assert.has_error(function() po.run {} end, "po.run: argv (a list of strings) is required")
    assert.has_error(function() po.run { argv = {} } end, "po.run: argv must not be empty")
    assert.has_error(function() po.run { argv = { "ls", {} } } end, "po.run: argv[2] must be a string, got table")
    assert.has_error(function() po.run { argv = { "ls" }, timeout = -1 } end,
      "po.run: timeout must be a positive number of seconds, got -1")
    assert.has_error(function() po.run { argv = { "ls" }, env = { A = {} } } end,
      "po.run: env.A must be a string, a number or false (to unset it), got table")
    assert.has_error(function() po.run { argv = { "ls" }, output_limit = 1.5 } end,
      "po.run: output_limit must be a non-negative whole number of bytes")
    assert.has_error(function() po.run { argv = { "ls" }, cpu = -1 } end,
      "po.run: cpu must be a non-negative whole number (one of po.cpus())")
  end)

  it("pins a child to the CPU asked for, and leaves the caller's mask alone", function()
    local cpus = assert(po.cpus())
    assert.is_true(#cpus >= 1)
    for i = 2, #cpus do
      assert.is_true(cpus[i] > cpus[i - 1])
    end
    -- The kernel's own view of the child: Cpus_allowed_list in /proc.
    local function allowed(spec)
      spec.argv = { "sh", "-c", "grep Cpus_allowed_list /proc/self/status" }
      local r = po.run_sync(spec)
      assert.are.equal("ok", r.status)
      return r.stdout:match("Cpus_allowed_list:%s*(%S+)")
    end
    local last = cpus[#cpus]
    assert.are.equal(tostring(last), allowed { cpu = last })
    assert.are.equal(tostring(cpus[1]), allowed { cpu = cpus[1] })
    -- Without cpu the child has the whole mask again: the pin did not stick
    -- to the thread that spawned it.
    local whole = allowed {}
    if #cpus > 1 then
      assert.are_not.equal(tostring(last), whole)
    end
    assert.are.same(cpus, po.cpus())
    -- A CPU outside the mask: the run reports it could not start.
    local r = po.run_sync { argv = { "true" }, cpu = 100000 }
    assert.are.equal("error", r.status)
    assert.matches("pin to the CPU", r.error)
  end)

  it("kills a child that ignores SIGTERM, with its grandchild", function()
    local r = po.run_sync {
      cmd = 'trap "" TERM; sleep 100 & echo $!; sleep 100',
      shell = true,
      timeout = 0.3,
      kill_grace = 0.3,
    }
    assert.are.equal("timeout", r.status)
    assert.are.equal("SIGKILL", r.signal)
    local grandchild = tonumber(r.stdout:match("%d+"))
    assert.is_number(grandchild)
    local deadline = po.now() + 5 -- a bound on the wait, not on the kill
    while (#live_in_group(r.pid) > 0) and po.now() < deadline do
      po.sleep(0.02)
    end
    assert.are.same({}, live_in_group(r.pid))
    local state = proc_state(grandchild)
    assert.is_true(state == nil or state == "Z")
  end)

  it("a child that exits on SIGTERM stops at the deadline without waiting for the grace", function()
    local r = po.run_sync { argv = { "sleep", "100" }, timeout = 0.1, kill_grace = 30 }
    assert.are.equal("timeout", r.status)
    assert.are.equal("SIGTERM", r.signal)
    assert.is_true(r.duration < 10)
  end)

  it("drains 10 MB on stdout together with 10 MB on stderr", function()
    local r = po.run_sync {
      cmd = "head -c 10000000 /dev/zero & head -c 10000000 /dev/zero >&2; wait",
      shell = true,
      timeout = 60,
    }
    assert.are.equal("ok", r.status)
    assert.are.equal(10000000, #r.stdout)
    assert.are.equal(10000000, #r.stderr)
    assert.is_false(r.truncated)
  end)

  it("caps each stream at output_limit and says so", function()
    local r = po.run_sync { cmd = "head -c 5000 /dev/zero; echo short >&2", shell = true, output_limit = 100 }
    assert.are.equal("ok", r.status)
    assert.are.equal(100, #r.stdout)
    assert.are.equal("short\n", r.stderr)
    assert.is_true(r.truncated)
  end)

  it("does not wait for background processes the command left holding its output", function()
    local r = po.run_sync { cmd = "sleep 100 & echo started", shell = true, kill_grace = 0.2, timeout = 30 }
    assert.are.equal("ok", r.status)
    assert.are.equal("started\n", r.stdout)
    assert.is_true(r.duration < 10)
  end)

  it("leaves no zombie and no open descriptor after 500 runs", function()
    local fds = open_fds()
    for _ = 1, 500 do
      local r = po.run_sync { argv = { "true" }, stdin = "x" }
      assert.are.equal("ok", r.status)
    end
    assert.are.equal(0, zombie_children())
    assert.are.equal(fds, open_fds())
  end)

  it("fut:cancel() kills the child's whole group", function()
    local pidfile = os.tmpname()
    local fut = po.run { cmd = "sleep 100 & echo $! > " .. pidfile .. "; sleep 100", shell = true, kill_grace = 0.2 }
    local grandchild
    for _ = 1, 500 do
      local f = io.open(pidfile)
      grandchild = f and tonumber(f:read("*a"))
      if f then
        f:close()
      end
      if grandchild then
        break
      end
      po.sleep(0.01)
    end
    os.remove(pidfile)
    assert.is_number(grandchild)
    assert.is_true(fut:cancel())
    local _, err, code = fut:wait()
    assert.are.equal("ECANCELED", code)
    local deadline = po.now() + 5
    while proc_state(grandchild) and proc_state(grandchild) ~= "Z" and po.now() < deadline do
      po.sleep(0.02)
    end
    local state = proc_state(grandchild)
    assert.is_true(state == nil or state == "Z")
  end)

  it("runs many children at once inside po.async", function()
    -- A barrier: each child marks that it started, then waits (up to 30 s)
    -- until all ten have, and prints how many it saw. Ten from every child
    -- means each was still running when the last one started.
    local dir = proc.tempdir()
    local futures = {}
    for i = 1, 10 do
      futures[i] = po.async(function()
        local script = "touch " .. q(dir .. "/" .. i) .. "; n=0; while [ $(ls " .. q(dir) .. " | wc -l) -lt 10 ]"
          .. " && [ $n -lt 600 ]; do sleep 0.05; n=$((n+1)); done; ls " .. q(dir) .. " | wc -l"
        return po.run_sync { argv = { "sh", "-c", script } }.stdout
      end)
    end
    local outs = po.all(futures)
    proc.rmdir(dir)
    for i = 1, 10 do
      assert.are.equal("10", outs[i]:match("%d+"), "child " .. i .. " did not see the others running")
    end
  end)
end)
