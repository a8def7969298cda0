-- poengine serve's live page in headless Chromium, end to end: the page of
-- a run served by a real `poengine serve`, and a real `poengine optimize
-- --resume` adding a cycle to the run while the page is open — the new
-- cycle's candidates appear without a reload, and an opened candidate
-- stays open.
local po = require "poengine"
local proc = require "tests.tools.proc"
local home_tool = require "tests.tools.serve_home"

local q = proc.quote

-- Runs tests/tools/browser.py on url with the steps in order; its report.
local function browse(url, steps)
  local args = { "python3", "tests/tools/browser.py", url }
  for _, s in ipairs(steps) do
    if s[1] == "sh" then
      args[#args + 1] = "--sh"
      args[#args + 1] = s[2]
    else
      args[#args + 1] = "--" .. s[1]
      args[#args + 1] = s[2] .. "=" .. s[3]
    end
  end
  -- po.run, not a blocking shell: this process's loop keeps turning.
  local r = assert(po.run { argv = args, timeout = 180 }:wait())
  assert.are.equal("ok", r.status, r.stderr)
  local report = assert(po.json.decode(r.stdout))
  assert.are.same({}, report.console)
  assert.are.same({}, report.exceptions)
  return report.results
end

describe("poengine serve's live page in a browser", function()
  local home, server
  after_each(function()
    if server then
      server:cancel()
    end
    proc.rmdir(home)
  end)

  it("shows a cycle a running optimizer adds, without a reload", function()
    home = proc.tempdir()
    home_tool.run(home, "live", 1)
    local port
    do
      local probe = assert(po.http.serve { port = 0, routes = {} })
      port = probe.port
      probe:close()
    end
    server = po.run { argv = { proc.bin, "serve", "--home", home, "--listen", "127.0.0.1:" .. port } }
    local url = "http://127.0.0.1:" .. port .. "/runs/live"
    repeat
      local res = po.http.request { url = url, timeout = 5 }:wait()
      if not res then
        po.sleep(0.05)
      end
    until res
    local resume = ("POENGINE_HOME=%s %s optimize %s --resume --cycles 2 --quiet --output %s"):format(q(home),
      q(proc.bin), q(home .. "/task-live.lua"), q(home .. "/runs/live"))
    local r = browse(url, {
      { "eval", "marker", [=[window.__marker = 7]=] },
      { "wait", "live", [=[document.getElementById("live-state").textContent === "live"]=] },
      { "eval", "before", [=[!!document.getElementById("cand-c2.1")]=] },
      { "eval", "open", [=[document.getElementById("cand-c1.1").querySelector("summary").click(), document.getElementById("cand-c1.1").open]=] },
      { "sh", resume },
      { "wait", "after", [=[!!document.getElementById("cand-c2.1") && !!document.getElementById("cand-c2.2")]=] },
      { "eval", "kept", [=[window.__marker === 7 && document.getElementById("cand-c1.1").open]=] },
      { "eval", "cycles", [=[document.querySelectorAll("#section-outcomes tbody tr").length]=] },
    })
    assert.is_true(r.live)
    assert.is_false(r.before)
    assert.is_true(r.open)
    assert.is_true(r.after)
    assert.is_true(r.kept) -- the same page, not reloaded, the candidate still open
    assert.are.equal(2, r.cycles)
  end)
end)
