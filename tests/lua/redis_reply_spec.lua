-- po.redis: reply shapes (an error inside an array, nested arrays, nil
-- holes), a SELECT the server refuses, a server that closes the connection
-- with a command in flight, and connect's option checks, against a real
-- redis-server started by the spec (tests/tools/redis_server.lua).
local po = require "poengine"
local proc = require "tests.tools.proc"
local redis_server = require "tests.tools.redis_server"

describe("po.redis replies and failures", function()
  local dir, server
  setup(function()
    dir = proc.tempdir()
    server = redis_server.start(dir, redis_server.free_port())
  end)
  teardown(function()
    redis_server.stop(server)
    proc.rmdir(dir)
  end)

  local function connect(opts)
    return assert(po.redis.connect("unix://" .. server.sock, opts))
  end

  it("gives an error inside an array as { error = message }, and keeps nesting and nil holes", function()
    local c = connect()
    local r = assert(c:eval("return {1, redis.error_reply('BAD inner'), {'a', {2}}, false, 'z'}"):wait())
    assert.are.same({ 1, { error = "BAD inner" }, { "a", { 2, n = 1 }, n = 2 }, nil, "z", n = 5 }, r)
    c:close()
  end)

  it("returns EREDIS when the server refuses the SELECT of the URL's database", function()
    local c, msg, code = po.redis.connect("unix://" .. server.sock .. "?db=99999")
    assert.is_nil(c)
    assert.are.equal("EREDIS", code)
    assert.matches("SELECT refused by", msg)
    assert.matches("DB index is out of range", msg)
  end)

  it("fails a command in flight with ECONN when the server closes the connection", function()
    local c = connect()
    local victim = connect()
    local id = assert(victim:command("CLIENT", "ID"):wait())
    local blocked = victim:command("BLPOP", "never-pushed", 0)
    assert.are.equal(1, c:command("CLIENT", "KILL", "ID", id):wait())
    local v, msg, code = blocked:wait(10)
    assert.is_nil(v)
    assert.are.equal("ECONN", code)
    assert.matches("lost the connection to", msg)
    -- and it reconnects by itself for the next command
    assert.are.equal("PONG", victim:command("PING"):wait(10))
    victim:close()
    c:close()
  end)

  it("raises on malformed connect options, naming them", function()
    local url = "unix://" .. server.sock
    assert.has_error(function() po.redis.connect(url, { connect_timeout = 0 }) end,
      "po.redis.connect: connect_timeout must be a number of at least 0.001")
    assert.has_error(function() po.redis.connect(url, { command_timeout = math.huge }) end,
      "po.redis.connect: command_timeout must be a number of at least 0")
    assert.has_error(function() po.redis.connect(url, { max_queue = 1.5 }) end,
      "po.redis.connect: max_queue must be an integer of at least 0")
    assert.has_error(function() po.redis.connect(url, { max_queue = "10" }) end,
      "po.redis.connect: max_queue must be an integer of at least 0")
    assert.has_error(function() po.redis.connect(url, { wait = "yes" }) end,
      "po.redis.connect: wait must be a boolean, got string")
  end)
end)
