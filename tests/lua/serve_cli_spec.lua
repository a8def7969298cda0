-- poengine serve and poengine optimize --serve as a user runs them: the
-- real binary in the background, found by the address it prints; a run's
-- events seen live while it runs; a hundred clients at once while a run
-- writes; a run removed while it is served; bad command lines.
local po = require "poengine"
local proc = require "tests.tools.proc"
local home_tool = require "tests.tools.serve_home"

local bin = proc.bin

-- Starts `poengine ARGS` in the background (stdout to a file); returns the
-- future of the process and a function that waits for a stdout line
-- matching `pattern` and returns its capture.
local function background(args, env)
  local dir = proc.tempdir()
  local out = dir .. "/stdout"
  local fut = po.run { argv = { "sh", "-c", 'exec "$0" "$@" >' .. proc.quote(out) .. " 2>" .. proc.quote(dir .. "/stderr"),
    bin, table.unpack(args) }, env = env }
  finally(function() -- a failed assertion must not leave it running
    fut:cancel()
  end)
  local function wait_for(pattern)
    while true do
      local f = io.open(out, "rb")
      local text = f and f:read("*a") or ""
      if f then
        f:close()
      end
      local hit = text:match(pattern)
      if hit then
        return hit
      end
      if fut:done() then
        local r = fut:wait()
        error("poengine " .. table.concat(args, " ") .. " ended first: " .. tostring(r and r.status) .. "\n"
          .. text .. (io.open(dir .. "/stderr") and io.open(dir .. "/stderr"):read("*a") or ""))
      end
      po.sleep(0.05)
    end
  end
  return fut, wait_for, dir
end

local function get(url, headers)
  return assert(po.http.request { url = url, headers = headers, timeout = 60 }:wait())
end

describe("poengine serve (the command)", function()
  local home
  before_each(function() home = proc.tempdir() end)
  after_each(function() proc.rmdir(home) end)

  it("prints the address it serves, and serves the home's runs there", function()
    home_tool.run(home, "alpha", 1)
    local fut, wait_for = background { "serve", "--home", home, "--listen", "127.0.0.1:0" }
    local url = wait_for("poengine serve: (http://127%.0%.0%.1:%d+)")
    local doc = assert(po.json.decode(get(url .. "/api/runs").body))
    assert.are.equal("alpha", doc.runs[1].id)
    fut:cancel()
  end)

  it("lets poengine runs rm take a run it is serving: its stream says gone, its pages 404", function()
    home_tool.run(home, "alpha", 1)
    home_tool.run(home, "beta", 1)
    local fut, wait_for = background { "serve", "--home", home, "--listen", "127.0.0.1:0" }
    local url = wait_for("poengine serve: (http://127%.0%.0%.1:%d+)")
    local parse, got = home_tool.sse(), {}
    local size = assert(po.files.stat(home .. "/runs/beta/events.jsonl")).size
    local stream = po.http.request { url = url .. "/api/runs/beta/events?from=" .. size, timeout = 60,
      on_chunk = function(chunk)
        for _, ev in ipairs(parse(chunk)) do
          got[#got + 1] = ev
        end
      end }
    assert.are.equal(200, get(url .. "/api/runs/beta").status)
    local status, _, err = proc.sh("POENGINE_HOME=" .. proc.quote(home) .. " " .. proc.quote(bin) .. " runs rm beta")
    assert.are.equal(0, status, err)
    local res = assert(stream:wait()) -- the stream ends by itself
    assert.are.equal(200, res.status)
    assert.are.equal("gone", got[#got].event)
    assert.are.equal(404, get(url .. "/api/runs/beta").status)
    assert.are.equal(404, get(url .. "/runs/beta").status)
    local doc = assert(po.json.decode(get(url .. "/api/runs").body))
    assert.are.equal(1, #doc.runs)
    assert.are.equal("alpha", doc.runs[1].id)
    assert.is_false(fut:done()) -- the server went on
    fut:cancel()
  end)

  it("refuses an address off loopback without a token, and takes POENGINE_TOKEN", function()
    local r = proc.sh(proc.quote(bin) .. " serve --home " .. proc.quote(home) .. " --listen 0.0.0.0:0")
    assert.are.equal(1, r)
    local fut, wait_for = background({ "serve", "--home", home, "--listen", "127.0.0.1:0" },
      { POENGINE_TOKEN = "tok-123" })
    local url = wait_for("poengine serve: (http://[%d.]+:%d+)")
    assert.are.equal(401, get(url .. "/api/runs").status)
    assert.are.equal(200, get(url .. "/api/runs", { Authorization = "Bearer tok-123" }).status)
    fut:cancel()
  end)

  it("says what is wrong with a command line, exit status 2", function()
    for _, args in ipairs { "--listen", "--listen nowhere", "--listen 1.2.3.4:99999", "--bogus", "extra" } do
      local status, _, err = proc.sh(proc.quote(bin) .. " serve " .. args)
      assert.are.equal(2, status, args)
      assert.truthy(err:find("usage: poengine serve", 1, true), args)
    end
  end)
end)

describe("poengine optimize --serve", function()
  local dir
  before_each(function() dir = proc.tempdir() end)
  after_each(function() proc.rmdir(dir) end)

  it("serves the run while it goes on: events arrive live, a hundred clients at once are answered", function()
    local task = home_tool.task_file(dir, "live", 3)
    local env = { POENGINE_HOME = dir .. "/home" }
    local fut, wait_for, bdir = background({ "optimize", task, "--serve", "127.0.0.1:0", "--quiet" }, env)
    local url = wait_for("serving: (http://127%.0%.0%.1:%d+)/runs/live")
    local parse, kinds = home_tool.sse(), {}
    local stream = po.http.request { url = url .. "/api/runs/live/events?from=0", timeout = 300,
      on_chunk = function(chunk)
        for _, ev in ipairs(parse(chunk)) do
          kinds[#kinds + 1] = ev.event
        end
      end }
    -- While the run writes: rounds of 100 requests at once, all answered.
    -- The server stops with the run: a refused connection is only right
    -- once the run has written its end.
    local function ended()
      local evs = require("poengine.runs.model").events(dir .. "/home/runs/live") or {}
      return #evs > 0 and evs[#evs].kind == "end"
    end
    local answered, over = 0, false
    while not over and not fut:done() do
      local futs = {}
      for i = 1, 100 do
        futs[i] = po.http.request { url = url .. (i % 2 == 0 and "/api/runs/live" or "/metrics"), timeout = 120 }
      end
      for _, f in ipairs(futs) do
        local res, err = f:wait()
        if res then
          assert.are.equal(200, res.status)
          answered = answered + 1
        else
          if not ended() then
            error("a request failed while the run went on: " .. tostring(err))
          end
          over = true
        end
      end
    end
    local r = fut:wait()
    assert.is_true(answered >= 100, ("%d answered; the run: %s %s"):format(answered, proc.read(bdir .. "/stdout"), proc.read(bdir .. "/stderr")))
    assert.are.equal(0, r.code, r.stderr)
    stream:cancel()
    -- the stream saw the run from its start to its third cycle, as written
    local evs = assert(require("poengine.runs.model").events(dir .. "/home/runs/live"))
    assert.are.equal("start", kinds[1])
    local cycles = 0
    for _, k in ipairs(kinds) do
      cycles = cycles + (k == "cycle" and 1 or 0)
    end
    assert.is_true(cycles >= 2, table.concat(kinds, " "))
    for i = 1, #kinds do
      assert.are.equal(evs[i].kind, kinds[i])
    end
  end)

  it("refuses a bad --serve address before running anything", function()
    local task = home_tool.task_file(dir, "bad", 1)
    local status, _, err = proc.sh("POENGINE_HOME=" .. proc.quote(dir .. "/home") .. " " .. proc.quote(bin)
      .. " optimize " .. proc.quote(task) .. " --serve nowhere")
    assert.are.equal(2, status)
    assert.truthy(err:find("--serve", 1, true))
    assert.is_nil(po.files.stat(dir .. "/home/runs/bad"))
  end)
end)
