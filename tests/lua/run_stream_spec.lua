-- A run's events on a Redis stream (poengine.runs.publish, .mirror) against
-- a real redis-server: two optimizer processes of one task publish to one
-- stream, `poengine serve --redis` mirrors it live and `poengine runs pull`
-- copies it, and the run model and /api/runs/<id> show one run with both
-- workers' candidates; a pull resumes where it stopped; a local run is never
-- written into; a dead server leaves the run and its local log whole; the
-- stream is capped.
local po = require "poengine"
local proc = require "tests.tools.proc"
local redis_server = require "tests.tools.redis_server"
local spin_runs = require "tests.tools.spin_runs"
local serve = require "poengine.serve"
local model = require "poengine.runs.model"
local publish = require "poengine.runs.publish"

local build = os.getenv("POENGINE_BUILD_DIR") or "build"
if build:sub(1, 1) ~= "/" then
  build = os.getenv("PWD") .. "/" .. build
end
spin_runs.spin = build .. "/tests/bench_spin" -- the workers run in directories of their own

local function exists(path)
  return os.execute("test -e " .. proc.quote(path)) == 0
end

-- An optimizer process running task "shared" (spin_runs: one cycle over
-- `points`) with its own home, publishing as `publish` says (a Lua table
-- constructor, or nil) and with the environment env.
local function worker(dir, name, points, publish_spec, env)
  local work = dir .. "/" .. name
  assert(os.execute("mkdir -p " .. proc.quote(work)) == 0)
  local path = spin_runs.task_file(work, { id = "shared", points = points })
  local e = { POENGINE_HOME = dir .. "/home-" .. name, POENGINE_PUBLISH = false }
  for k, v in pairs(env or {}) do
    e[k] = v
  end
  return po.run { argv = { po.executable(), "-e", string.format([[
    local task = assert(po.optimizer.load_task(%q))
    local r = assert(po.optimizer.run(task, { quiet = true, publish = %s }))
    io.write(po.json.encode(r.published))
  ]], path, publish_spec or "nil") }, env = e, timeout = 120 }
end

local function finished(fut)
  local r = fut:wait()
  assert.are.equal("ok", r.status, r.stderr)
  return po.json.decode(r.stdout), r.stderr
end

describe("run events on a Redis stream", function()
  local server, dir
  before_each(function()
    server = redis_server.start_temp()
    dir = proc.tempdir()
  end)
  after_each(function()
    redis_server.stop_temp(server)
    proc.rmdir(dir)
  end)

  it("merges two workers' runs into one, mirrored live by serve --redis and copied by runs pull", function()
    local served = po.run { argv = { po.executable(), "serve", "--home", dir .. "/served", "--listen", "127.0.0.1:0",
      "--redis", server.url }, timeout = 300 }
    local ok, err = pcall(function()
      local a = worker(dir, "a", { 2000, 8000 }, string.format("{ redis = %q, worker = 'a' }", server.url))
      local b = worker(dir, "b", { 1, 16000 }, nil, { POENGINE_PUBLISH = server.url })
      local pa, pb = finished(a), finished(b)
      assert.are.same({ "a", "poengine:run:shared", 0 }, { pa.worker, pa.stream, pa.failures })
      assert.matches(":%d+$", pb.worker) -- the default name: host and pid
      assert.are.equal("poengine:run:shared", pb.stream)
      -- each published exactly its local log's lines
      local la = assert(model.events(dir .. "/home-a/runs/shared"))
      assert.are.equal(#la, pa.published)

      -- serve --redis mirrors the stream as it comes
      local m
      local deadline = po.now() + 60
      repeat
        po.sleep(0.1)
        m = exists(dir .. "/served/runs/shared/events.jsonl") and model.load(dir .. "/served/runs/shared")
      until (m and m.status == "finished") or po.now() > deadline
      assert.is_truthy(m, "serve --redis mirrored nothing")
      assert.are.equal(4, #m.candidates)
      local ids = {}
      for _, c in ipairs(m.candidates) do
        ids[#ids + 1] = c.id
      end
      table.sort(ids)
      local bname = pb.worker
      assert.are.same({ "a/c1.1", "a/c1.2", bname .. "/c1.1", bname .. "/c1.2" }, ids)
      assert.are.same({ "original", "a/c1.1" }, m.chain) -- rounds=2000 is twice as fast
      assert.are.equal(2, #m.workers)
      assert.are.same({ "finished", "finished" }, { m.workers[1].status, m.workers[2].status })
      assert.are.equal(4, m.cycle_outcomes[1].proposed)

      -- /api/runs/shared over the mirrored home
      local srv = assert(serve.start { home = dir .. "/served", listen = "127.0.0.1:0" })
      local res = po.http.request({ url = srv.url .. "/api/runs/shared", timeout = 30 }):wait()
      srv:close()
      assert.are.equal(200, res.status)
      local doc = po.json.decode(res.body)
      assert.are.equal(4, doc.candidates)
      assert.are.equal("finished", doc.status)
      assert.are.same({ "original", "a/c1.1" }, doc.chain)

      -- runs pull copies the same run, and a second pull adds nothing
      local home = dir .. "/pulled"
      local r = po.run_sync { argv = { po.executable(), "runs", "pull", server.url, "--home", home } }
      assert.are.equal("ok", r.status, r.stderr)
      assert.matches("^pulled %d+ events into 1 runs: shared\n$", r.stdout)
      local pulled = assert(model.load(home .. "/runs/shared"))
      assert.are.equal(4, #pulled.candidates)
      assert.are.same(m.chain, pulled.chain)
      r = po.run_sync { argv = { po.executable(), "runs", "pull", server.url, "--home", home, "--stream",
        "poengine:run:shared" } }
      assert.are.equal("pulled 0 events into 1 runs: shared\n", r.stdout)
      assert.are.equal(#assert(model.events(home .. "/runs/shared")), pa.published + pb.published)
    end)
    served:cancel()
    assert(ok, err)
  end)

  it("never writes into a directory that holds a run of this machine's own", function()
    local client = assert(po.redis.connect(server.url))
    client:command("XADD", "poengine:run:mine", "*", "worker", "w", "event", '{"kind":"start"}'):wait()
    client:close()
    local home = dir .. "/home"
    assert(os.execute("mkdir -p " .. proc.quote(home .. "/runs/mine")) == 0)
    local own = '{"kind":"start","task":"mine"}\n'
    assert(po.write_file(home .. "/runs/mine/events.jsonl", own))
    local r = po.run_sync { argv = { po.executable(), "runs", "pull", server.url, "--home", home } }
    assert.are.equal("ok", r.status, r.stderr)
    assert.are.equal("pulled 0 events into 0 runs\n", r.stdout)
    assert.matches("holds a run of this machine's own; stream poengine:run:mine is not mirrored", r.stderr, 1, true)
    assert.are.equal(own, proc.read(home .. "/runs/mine/events.jsonl"))
  end)

  it("runs to the end with a whole local log when the server is gone, and says so once", function()
    local url = "redis://:pw@127.0.0.1:" .. redis_server.free_port()
    local pub, stderr = finished(worker(dir, "a", { 2000 }, string.format("{ redis = %q, timeout = 0.3, retry = 0.05 }", url)))
    assert.are.equal(0, pub.published)
    assert.is_true(pub.failures >= 1)
    local events = assert(model.events(dir .. "/home-a/runs/shared"))
    assert.are.equal("end", events[#events].kind)
    local _, lines = stderr:gsub("the stream at", "")
    assert.are.equal(1, lines, stderr)
    assert.is_nil(stderr:find("pw@", 1, true))
  end)

  it("caps the stream at about maxlen entries", function()
    local p = publish.open(publish.check({ redis = server.unix_url, maxlen = 10 }, "test", 1), "capped")
    for i = 1, 500 do
      assert.is_true(p:publish('{"kind":"tick","i":' .. i .. '}'))
    end
    local client = assert(po.redis.connect(server.url))
    local len = client:command("XLEN", "poengine:run:capped"):wait()
    client:close()
    assert.are.equal(500, p:stats().published)
    p:close()
    assert.is_true(len >= 10 and len < 500, tostring(len))
  end)

  it("raises on a malformed publish option", function()
    assert.has_error(function()
      publish.check({ redis = server.url, maxlen = 0 }, "po.optimizer", 1)
    end, "po.optimizer: publish.maxlen must be a positive integer, got 0")
    assert.has_error(function()
      publish.check({ redis = server.url, strem = "x" }, "po.optimizer", 1)
    end, "po.optimizer: unknown option 'publish.strem'")
    assert.has_error(function()
      publish.check(42, "po.optimizer", 1)
    end, "po.optimizer: publish must be a table or a redis:// URL, got number")
  end)
end)
