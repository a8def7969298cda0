-- po.redis against a real redis-server (Debian's), started by this spec on
-- a free port and a unix socket in a temporary directory, and always
-- stopped: commands, replies, pipelining, scripts, AUTH, SELECT, timeouts,
-- a server killed and restarted, a refused connection.
local po = require "poengine"
local proc = require "tests.tools.proc"

local redis_server = require "tests.tools.redis_server"
local free_port, start, kill9, stop = redis_server.free_port, redis_server.start, redis_server.kill9, redis_server.stop

describe("po.redis", function()
  local dir, server, client
  before_each(function()
    dir = proc.tempdir()
    server = start(dir, free_port())
  end)
  after_each(function()
    if client then
      client:close()
      client = nil
    end
    stop(server)
    proc.rmdir(dir)
  end)

  local function connect(opts)
    client = assert(po.redis.connect("redis://127.0.0.1:" .. server.port, opts))
    return client
  end

  it("sets, gets and counts; nil, numbers, strings and arrays come back as Lua values", function()
    local c = connect()
    assert.are.equal("OK", c:command("SET", "k", "v1"):wait())
    assert.are.equal("v1", c:command("GET", "k"):wait())
    local v, err = c:command("GET", "missing"):wait()
    assert.is_nil(v)
    assert.is_nil(err)
    assert.are.equal(1, c:command("INCR", "n"):wait())
    assert.are.equal(11, c:command("INCRBY", "n", 10):wait())
    assert.are.equal(3, c:command("RPUSH", "l", "a", "b", 3):wait())
    local l = c:command("LRANGE", "l", 0, -1):wait()
    assert.are.same({ "a", "b", "3", n = 3 }, l)
    local m = c:command("MGET", "k", "missing", "n"):wait()
    assert.are.equal(3, m.n)
    assert.are.equal("v1", m[1])
    assert.is_nil(m[2])
    assert.are.equal("11", m[3])
    local empty = c:command("LRANGE", "nothing", 0, -1):wait()
    assert.are.same({ n = 0 }, empty)
    -- binary-safe
    local bin = "a\0b\255"
    c:command("SET", "bin", bin):wait()
    assert.are.equal(bin, c:command("GET", "bin"):wait())
  end)

  it("fails a future with EREDIS and the server's message on an error reply", function()
    local c = connect()
    c:command("SET", "s", "text"):wait()
    local v, msg, code = c:command("INCR", "s"):wait()
    assert.is_nil(v)
    assert.are.equal("EREDIS", code)
    assert.matches("not an integer", msg)
    local _, msg2, code2 = c:command("NOSUCHCOMMAND"):wait()
    assert.are.equal("EREDIS", code2)
    assert.matches("unknown command", msg2)
    -- the connection goes on
    assert.are.equal("PONG", c:command("PING"):wait())
    local s = c:stats()
    assert.are.equal(2, s.errors)
    assert.is_true(s.connected)
  end)

  it("answers 1000 commands sent at once, in order", function()
    local c = connect()
    local futs = {}
    for i = 1, 1000 do
      futs[i] = c:command("RPUSH", "seq", i)
    end
    for i = 1, 1000 do
      assert.are.equal(i, futs[i]:wait())
    end
    local all = c:command("LRANGE", "seq", 0, -1):wait()
    for i = 1, 1000 do
      assert.are.equal(tostring(i), all[i])
    end
    -- and inside tasks, waiting together
    local tasks = {}
    for i = 1, 50 do
      tasks[i] = po.async(function()
        return c:command("INCR", "tasks"):wait()
      end)
    end
    local seen = {}
    for i = 1, 50 do
      seen[assert(tasks[i]:wait())] = true
    end
    for i = 1, 50 do
      assert.is_true(seen[i])
    end
  end)

  it("evaluates scripts through EVALSHA, loading them with EVAL when the server lacks them", function()
    local c = connect()
    local script = "redis.call('SET', KEYS[1], ARGV[1]); return {KEYS[1], tonumber(ARGV[2]) + 1}"
    local r = c:eval(script, { "ek" }, { "val", 41 }):wait()
    assert.are.same({ "ek", 42, n = 2 }, r)
    assert.are.equal("val", c:command("GET", "ek"):wait())
    -- the server now holds the script under the SHA-1 the client computed
    local sha = c:command("SCRIPT", "LOAD", script):wait()
    local exists = c:command("SCRIPT", "EXISTS", sha):wait()
    assert.are.equal(1, exists[1])
    local before = c:stats().replies
    assert.are.same({ "ek", 2, n = 2 }, c:eval(script, { "ek" }, { "val", 1 }):wait())
    assert.are.equal(before + 1, c:stats().replies) -- EVALSHA alone: one round trip
    assert.are.equal("OK", c:command("SCRIPT", "FLUSH"):wait())
    assert.are.same({ "ek", 3, n = 2 }, c:eval(script, { "ek" }, { "v", 2 }):wait())
    -- no keys, no args
    assert.are.equal(7, c:eval("return 7"):wait())
    -- an error inside the script fails with EREDIS
    local _, msg, code = c:eval("return redis.call('INCR', 'ek')"):wait()
    assert.are.equal("EREDIS", code)
    assert.matches("not an integer", msg)
  end)

  it("selects the database of the URL", function()
    local c0 = connect()
    c0:command("SET", "where", "db0"):wait()
    local c5 = assert(po.redis.connect("redis://127.0.0.1:" .. server.port .. "/5"))
    assert.is_nil(c5:command("GET", "where"):wait())
    c5:command("SET", "where", "db5"):wait()
    assert.are.equal("db0", c0:command("GET", "where"):wait())
    c5:close()
    local u = assert(po.redis.connect("unix://" .. server.sock .. "?db=5"))
    assert.are.equal("db5", u:command("GET", "where"):wait())
    u:close()
  end)

  it("fails a command past command_timeout with ETIMEDOUT, and reconnects for the next", function()
    local c = connect { command_timeout = 0.2 }
    local slow = c:command("DEBUG", "SLEEP", 1)
    local v, msg, code = slow:wait()
    assert.is_nil(v)
    assert.are.equal("ETIMEDOUT", code)
    assert.matches("no reply", msg)
    -- the server sleeps on: commands time out until it wakes, on a new
    -- connection, and the late reply of DEBUG SLEEP is never taken for another's
    local pong
    for _ = 1, 100 do
      pong = c:command("PING"):wait()
      if pong then
        break
      end
    end
    assert.are.equal("PONG", pong)
    assert.are.equal("OK", c:command("SET", "after", "x"):wait())
    assert.are.equal("x", c:command("GET", "after"):wait())
    local s = c:stats()
    assert.is_true(s.timeouts >= 1)
    assert.is_true(s.connects >= 2)
  end)

  it("reconnects after the server is killed and started again on the same port", function()
    local c = connect { command_timeout = 20 }
    assert.are.equal("OK", c:command("SET", "a", 1):wait())
    kill9(server)
    -- sent on the dying connection (ECONN) or queued until the server is back
    local during = c:command("PING")
    server = start(dir, server.port)
    local v, _, code = during:wait()
    assert.truthy(v == "PONG" or code == "ECONN", code)
    assert.are.equal("PONG", c:command("PING"):wait())
    assert.is_nil(c:command("GET", "a"):wait()) -- a new server, nothing saved
    assert.is_true(c:stats().connects >= 2)
  end)

  it("queues commands while disconnected, up to max_queue", function()
    local c = connect { max_queue = 2, command_timeout = 20 }
    kill9(server)
    -- wait until the client has seen the drop
    for _ = 1, 200 do
      if not c:stats().connected then
        break
      end
      po.sleep(0.02)
    end
    assert.is_false(c:stats().connected)
    local q1, q2 = c:command("SET", "q", 1), c:command("INCR", "q")
    local v, msg, code = c:command("PING"):wait()
    assert.is_nil(v)
    assert.are.equal("ECONN", code)
    assert.matches("queue", msg)
    assert.are.equal(2, c:stats().queued)
    server = start(dir, server.port)
    assert.are.equal("OK", q1:wait())
    assert.are.equal(2, q2:wait())
  end)

  it("fails queued and sent commands with ECANCELED on close", function()
    local c = connect { command_timeout = 5 }
    local f = c:command("DEBUG", "SLEEP", 0.5)
    c:close()
    local _, _, code = f:wait()
    assert.are.equal("ECANCELED", code)
    local _, _, code2 = c:command("PING"):wait()
    assert.are.equal("ECANCELED", code2)
    c:close() -- twice is fine
    client = nil
  end)

  it("says ECONNREFUSED when nothing listens", function()
    stop(server)
    local c, msg, code = po.redis.connect("redis://127.0.0.1:" .. server.port)
    assert.is_nil(c)
    assert.are.equal("ECONNREFUSED", code)
    assert.matches("127.0.0.1:" .. server.port, msg)
    local u, _, ucode = po.redis.connect("unix://" .. dir .. "/none.sock")
    assert.is_nil(u)
    assert.are.equal("ECONNREFUSED", ucode)
  end)

  it("connects in the background with wait = false", function()
    local c = assert(po.redis.connect("redis://127.0.0.1:" .. server.port, { wait = false }))
    client = c
    assert.are.equal("PONG", c:command("PING"):wait())
  end)

  it("refuses rediss:// and bad URLs as runtime failures, bad arguments as errors", function()
    local c, msg, code = po.redis.connect("rediss://:hunter2@127.0.0.1:6380")
    assert.is_nil(c)
    assert.are.equal("EUNSUPPORTED", code)
    assert.is_nil(msg:find("hunter2", 1, true))
    local _, msg2, code2 = po.redis.connect("redis://:hunter2@127.0.0.1:notaport")
    assert.are.equal("EINVAL", code2)
    assert.is_nil(msg2:find("hunter2", 1, true))
    assert.has_error(function()
      po.redis.connect(42)
    end, "po.redis.connect: url must be a string, got number")
    assert.has_error(function()
      po.redis.connect("redis://h", { timeout = 1 })
    end, "po.redis.connect: unknown option 'timeout'")
    local ok = connect()
    assert.has_error(function()
      ok:command("SET", "k", {})
    end, "client:command: argument 3 must be a string or a number, got table")
    assert.has_error(function()
      ok:eval("return 1", { true })
    end, "client:eval: keys[1] must be a string or a number, got boolean")
    assert.has_error(function()
      ok:eval(nil)
    end, "client:eval: script must be a string, got nil")
  end)
end)

describe("po.redis with a password", function()
  local dir, server
  before_each(function()
    dir = proc.tempdir()
    server = start(dir, free_port(), { "--requirepass", "s3cr3t-pw" })
  end)
  after_each(function()
    stop(server)
    proc.rmdir(dir)
  end)

  it("authenticates with the URL's password, and refuses a wrong one without showing it", function()
    local c = assert(po.redis.connect("redis://:s3cr3t-pw@127.0.0.1:" .. server.port .. "/1"))
    assert.are.equal("PONG", c:command("PING"):wait())
    c:close()
    local u = assert(po.redis.connect("unix://default:s3cr3t-pw@" .. server.sock))
    assert.are.equal("PONG", u:command("PING"):wait())
    u:close()
    local bad, msg, code = po.redis.connect("redis://:wrong-pw@127.0.0.1:" .. server.port)
    assert.is_nil(bad)
    assert.are.equal("EAUTH", code)
    assert.is_nil(msg:find("wrong-pw", 1, true))
    local none, msg2, code2 = po.redis.connect("redis://127.0.0.1:" .. server.port)
    assert.is_nil(none)
    assert.are.equal("EAUTH", code2)
    assert.matches("NOAUTH", msg2)
  end)
end)
