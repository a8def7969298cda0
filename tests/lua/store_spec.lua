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
    for _, d in ipairs { 5, true } do -- a number is not taken for its text
      assert.has_error(function() po.store.log(dir, "x", { durability = d }) end,
        "po.store.log: durability must be 'full', 'batch' or 'none'")
    end
    assert.has_error(function() po.store.log(dir, 7) end,
      "po.store.log: name must be a string of 1 to 63 bytes other than 'meta'")
    assert.has_error(function() po.store.log(("d"):rep(5000), "x") end, "po.store.log: dir must be a non-empty path")
    assert.has_error(function() po.store.check(("d"):rep(5000)) end, "po.store.check: dir must be a non-empty path")
    local ok = assert(po.store.log(dir, "x", {})) -- no durability: the default
    assert.has_error(function() ok:scan(-1, 2) end, "log:scan: after must be a whole number >= 0")
    assert.has_error(function() ok:scan(0 / 0, 2) end, "log:scan: after must be a whole number >= 0")
    assert.has_error(function() ok:tail(2 ^ 53 + 2) end, "log:tail: n must be a whole number >= 0")
    assert.has_error(function() ok:trim(0.5) end, "log:trim: max_entries must be a whole number >= 0")
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

  it("without one, a nil dir is a runtime failure", function()
    local status, out = proc.sh("env -u POENGINE_HOME -u XDG_CACHE_HOME -u HOME " .. proc.quote(proc.bin)
      .. [[ -e 'for _, f in ipairs { po.store.log, po.store.check, po.store.repair } do
                  local r, msg, code = f(nil, "x") io.write(tostring(r), " ", code, " ", msg, "\n") end']])
    assert.are.equal(0, status)
    assert.are.equal("nil EINVAL po.store.log: no default store directory (set POENGINE_HOME or HOME)\n"
      .. "nil EINVAL po.store.check: no default store directory (set POENGINE_HOME or HOME)\n"
      .. "nil EINVAL po.store.repair: no default store directory (set POENGINE_HOME or HOME)\n", out)
  end)
end)

-- Issue 14: a damaged store is refused with ESTORE (never a hang, never a
-- crash), and po.store.check / repair and `poengine store check` name the
-- damage and recover what is readable. The damage is made from a fresh
-- store by tests/fixtures/store/corrupt.lua.
describe("damaged stores", function()
  local corrupt = require "tests.fixtures.store.corrupt"
  local dir
  before_each(function()
    dir = tempdir()
    local log = assert(po.store.log(dir, "events", { durability = "full" }))
    for i = 1, 3 do
      log:append("record " .. i)
    end
    log:close()
  end)
  after_each(function() rmdir(dir) end)

  -- Opens the store in another poengine, under a deadline: a hang or a
  -- SIGBUS shows as its exit status.
  local function open_elsewhere(what)
    local script = proc.tempfile(([[
      local po = require "poengine"
      local c, msg, code = %s { path = arg[1] }
      io.write(tostring(c and "opened" or code), "\n", tostring(msg), "\n")
    ]]):format(what), ".lua")
    local status, out, err = proc.sh("timeout 30 " .. q(proc.bin) .. " " .. q(script) .. " " .. q(dir))
    os.remove(script)
    return status, out, err
  end

  for _, damage in ipairs {
    { "a flipped bit in the last-page field", function(d) corrupt.flip_last_page(d, 60) end },
    { "a data file cut to 8 KB", function(d) corrupt.truncate(d, 8192) end },
    { "a data file cut to 12 KB", function(d) corrupt.truncate(d, 12288) end },
  } do
    it("refuses " .. damage[1] .. " with ESTORE", function()
      damage[2](dir)
      for _, what in ipairs { "po.cache.open", "po.metrics.collector" } do
        local status, out, err = open_elsewhere(what)
        assert.are.equal(0, status, what .. ": " .. err)
        assert.matches("^ESTORE\n.*store check", out)
      end
      local report = assert(po.store.check(dir))
      assert.is_false(report.ok)
      assert.matches("truncated or damaged", report.problems[1])
    end)
  end

  it("checks a sound store and counts each database's records", function()
    local report = assert(po.store.check(dir))
    assert.is_true(report.ok)
    assert.are.same({}, report.problems)
    assert.are.same({}, report.damaged)
    assert.are.equal(3, report.databases.events)
    assert.are.equal(1, report.databases.meta)
    assert.is_true(report.file_size > 0)
    local none, msg, code = po.store.check(dir .. "/nothing here")
    assert.is_nil(none)
    assert.are.equal("ENOENT", code)
    assert.matches("^po.store.check: no store in", msg)
    assert.has_error(function() po.store.check(42) end, "po.store.check: dir must be a string or nil, got number")
  end)

  it("repairs from the intact meta page and keeps the old file", function()
    local log = assert(po.store.log(dir, "events"))
    log:append("record 4") -- the newest transaction; the older meta page has 3
    log:close()
    corrupt.flip_last_page(dir, 60)
    local report = assert(po.store.repair(dir))
    assert.is_false(report.ok)
    assert.matches("recovered from meta page %d", table.concat(report.problems, "\n"))
    assert.are.equal(3, report.databases.events)
    assert.is_truthy(io.open(report.moved_to, "rb"))
    assert.matches("/data%.mdb%.before%-repair%-%d+$", report.moved_to)
    log = assert(po.store.log(dir, "events"))
    assert.are.same({ "record 1", "record 2", "record 3" }, (log:scan(0, 10)))
    log:close()
    assert.is_true(assert(po.store.check(dir)).ok)
  end)

  it("will not repair a store this process holds open", function()
    local log = assert(po.store.log(dir, "events"))
    local none, msg, code = po.store.repair(dir)
    assert.is_nil(none)
    assert.are.equal("ESTORE", code)
    assert.matches("close it first", msg)
    log:close()
  end)

  it("poengine store check reports, exits 1 on damage, and --repair fixes it", function()
    local status, out = proc.poengine("store check " .. q(dir))
    assert.are.equal(0, status)
    assert.matches(": sound\n", out)
    assert.matches("events%s+3 records", out)
    corrupt.truncate(dir, 8192)
    status, out = proc.poengine("store check " .. q(dir))
    assert.are.equal(1, status)
    assert.matches("damaged: 1 problem", out)
    assert.matches("claims %d+ pages but the file holds 2", out)
    assert.matches("store check .* %-%-repair", out)
    status, out = proc.poengine("store check " .. q(dir) .. " --repair")
    assert.are.equal(0, status)
    assert.matches("repaired: new empty store; the old data file is now .*before%-repair", out)
    status, out = proc.poengine("store check " .. q(dir))
    assert.are.equal(0, status)
    local err
    status, out, err = proc.poengine("store check " .. q(dir .. "/missing"))
    assert.are.equal(1, status)
    assert.matches("^poengine store: no store in", err)
    status, out, err = proc.poengine("store fix")
    assert.are.equal(2, status)
    assert.matches("unknown command 'fix'", err)
  end)
end)
