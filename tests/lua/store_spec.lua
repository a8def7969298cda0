-- po.store.log: the record log binding (append, count, scan, tail, trim,
-- clear, close), its options and error paths, and the default directory.
local po = require "poengine"
local proc = require "tests.tools.proc"
local q = proc.quote

local tempdir, rmdir = proc.tempdir, proc.rmdir

describe("po.store.log", function()
  local dir
  before_each(function() dir = tempdir() end)
  after_each(function() rmdir(dir) end)

  it("appends records and reads them back oldest first", function()
    local log = assert(po.store.log(dir, "events", { durability = "full" }))
    assert.are.equal("events", log:name())
    assert.are.equal(0, log:count())
    for i = 1, 10 do
      local key, trimmed = log:append("record " .. i .. "\0binary")
      assert.are.equal(i, key)
      assert.are.equal(0, trimmed)
    end
    assert.are.equal(10, log:count())
    local values, keys = log:scan(0, 3)
    assert.are.same({ "record 1\0binary", "record 2\0binary", "record 3\0binary" }, values)
    assert.are.same({ 1, 2, 3 }, keys)
    values, keys = log:scan(8, 100)
    assert.are.same({ 9, 10 }, keys)
    values, keys = log:tail(2)
    assert.are.same({ "record 9\0binary", "record 10\0binary" }, values)
    assert.are.same({ 9, 10 }, keys)
    assert.are.same({}, (log:scan(10, 5)))
    assert.are.same({}, (log:tail(0)))
    local key, trimmed = log:append("eleventh", 4)
    assert.are.equal(11, key)
    assert.are.equal(7, trimmed)
    assert.are.same({ 8, 9, 10, 11 }, select(2, log:scan(0, 100)))
    assert.are.equal(3, log:trim(1))
    assert.are.same({ "eleventh" }, (log:scan(0, 100)))
    assert.is_true(log:sync())
    assert.is_true(log:clear())
    assert.are.equal(0, log:count())
    log:close()
    log:close()
    assert.has_error(function() log:count() end, "log:count: the log is closed")
    assert.has_error(function() log:append("x") end, "log:append: the log is closed")
  end)

  it("shares one store between logs and across reopening", function()
    local a = assert(po.store.log(dir, "a"))
    local b = assert(po.store.log(dir .. "/.", "b", { durability = "batch" }))
    a:append("in a")
    b:append("in b")
    assert.are.equal(a:path(), b:path())
    a:close()
    assert.are.same({ "in b" }, (b:scan(0, 10)))
    b:close()
    local again = assert(po.store.log(dir, "a"))
    assert.are.same({ "in a" }, (again:scan(0, 10)))
    again:close()
  end)

  it("uses the default directory when dir is nil", function()
    local status, out, err = proc.sh("POENGINE_HOME=" .. q(dir .. "/home") .. " " .. q(proc.bin)
      .. [[ -e 'local log = assert(po.store.log(nil, "x")) log:append("v") print(log:path(), log:count())']])
    assert.are.equal(0, status, err)
    assert.matches("/home\t1\n$", out)
  end)

  it("returns runtime failures and raises on bad arguments", function()
    local log, err, code = po.store.log("/proc/self/nope", "x")
    assert.is_nil(log)
    assert.are.equal("EPERM", code)
    assert.matches("^po.store.log: ", err)
    assert.has_error(function() po.store.log(dir, "") end,
      "po.store.log: name must be a string of 1 to 63 bytes other than 'meta'")
    assert.has_error(function() po.store.log(dir, "meta") end,
      "po.store.log: name must be a string of 1 to 63 bytes other than 'meta'")
    assert.has_error(function() po.store.log(dir, ("n"):rep(64)) end,
      "po.store.log: name must be a string of 1 to 63 bytes other than 'meta'")
    assert.has_error(function() po.store.log(1, "x") end, "po.store.log: dir must be a string or nil, got number")
    assert.has_error(function() po.store.log("", "x") end, "po.store.log: dir must be a non-empty path")
    assert.has_error(function() po.store.log(dir, "x", { durability = "sometimes" }) end,
      "po.store.log: durability must be 'full', 'batch' or 'none'")
    assert.has_error(function() po.store.log(dir, "x", { sync = true }) end, "po.store.log: unknown option 'sync'")
    local ok = assert(po.store.log(dir, "x"))
    assert.has_error(function() ok:scan(-1, 2) end, "log:scan: after must be a whole number >= 0")
    assert.has_error(function() ok:scan(0, 1.5) end, "log:scan: limit must be a whole number >= 0")
    assert.has_error(function() ok:append("x", -1) end, "log:append: max_entries must be a whole number >= 0")
    assert.has_error(function() ok:tail("all") end)
    assert.has_error(function() ok:append({}) end)
    ok:close()
  end)
end)

describe("po.store.default_dir", function()
  local proc = require "tests.tools.proc"
  local function default_dir(env)
    local status, out = proc.sh("env -u POENGINE_HOME -u XDG_CACHE_HOME " .. env .. " "
      .. proc.quote(proc.bin) .. [[ -e 'io.write(tostring(po.store.default_dir()))']])
    assert.are.equal(0, status)
    return out
  end

  it("follows POENGINE_HOME, then XDG_CACHE_HOME, then HOME", function()
    assert.are.equal("/x/home", default_dir("POENGINE_HOME=/x/home XDG_CACHE_HOME=/x/cache HOME=/x/user"))
    assert.are.equal("/x/cache/poengine", default_dir("XDG_CACHE_HOME=/x/cache HOME=/x/user"))
    assert.are.equal("/x/user/.cache/poengine", default_dir("HOME=/x/user"))
    assert.are.equal("nil", default_dir("-u HOME"))
  end)
end)
