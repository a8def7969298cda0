-- po.write_file: whole replacement of a file, the failures as nil, message,
-- code, the options, and two processes writing one path at once while this
-- one reads it: every read sees one writer's content whole, and no
-- temporary file is left behind.
local po = require "poengine"
local proc = require "tests.tools.proc"

local read, tempdir, rmdir = proc.read, proc.tempdir, proc.rmdir

-- The names in dir, sorted.
local function listing(dir)
  local p = assert(io.popen("ls -A " .. proc.quote(dir)))
  local names = {}
  for name in p:lines() do
    names[#names + 1] = name
  end
  p:close()
  table.sort(names)
  return names
end

describe("po.write_file", function()
  local dir
  before_each(function()
    dir = tempdir()
  end)
  after_each(function()
    rmdir(dir)
  end)

  it("writes and replaces a file whole, leaving nothing beside it", function()
    local path = dir .. "/out.txt"
    assert.is_true(po.write_file(path, "first"))
    assert.are.equal("first", read(path))
    assert.is_true(po.write_file(path, "second, longer", { sync = false }))
    assert.are.equal("second, longer", read(path))
    assert.is_true(po.write_file(path, ""))
    assert.are.equal("", read(path))
    assert.is_true(po.write_file(path, "a\0b"))
    assert.are.equal("a\0b", read(path))
    assert.are.same({ "out.txt" }, listing(dir))
  end)

  it("keeps an existing file's permission bits", function()
    local path = dir .. "/script.sh"
    assert.is_true(po.write_file(path, "#!/bin/sh\n"))
    assert(os.execute("chmod 0750 " .. proc.quote(path)) == 0)
    assert.is_true(po.write_file(path, "#!/bin/sh\necho\n"))
    local _, mode = proc.sh("stat -c %a " .. proc.quote(path))
    assert.are.equal("750\n", mode)
  end)

  it("fails on a missing directory unless told to create it", function()
    local path = dir .. "/missing/dir/x.txt"
    local ok, err, code = po.write_file(path, "x")
    assert.is_nil(ok)
    assert.are.equal("ENOENT", code)
    assert.are.equal("po.write_file: cannot write '" .. path .. "': No such file or directory", err)
    assert.are.same({}, listing(dir))
    assert.is_true(po.write_file(path, "x", { parents = true }))
    assert.are.equal("x", read(path))
  end)

  it("returns EINVAL for a path that names no file", function()
    local ok, err, code = po.write_file(dir .. "/", "x")
    assert.is_nil(ok)
    assert.are.equal("EINVAL", code)
    assert.matches("not a file name", err)
    ok, err, code = po.write_file(dir, "x") -- a directory is not replaced
    assert.is_nil(ok)
    assert.is_string(err)
    assert.is_string(code)
  end)

  it("raises on programmer errors, naming the argument", function()
    assert.has_error(function() po.write_file(nil, "x") end, "po.write_file: path must be a string, got nil")
    assert.has_error(function() po.write_file(dir .. "/f", 5) end, "po.write_file: data must be a string, got number")
    assert.has_error(function() po.write_file(dir .. "/f", "x", { synk = true }) end,
      "po.write_file: unknown option 'synk'")
    assert.has_error(function() po.write_file(dir .. "/f", "x", { sync = 1 }) end,
      "po.write_file: sync must be a boolean, got number")
    assert.has_error(function() po.write_file(dir .. "/f\0g", "x") end,
      "po.write_file: path must not contain zero bytes")
  end)

  it("never shows a torn file or leaves a temporary one when two processes write one path", function()
    local path = dir .. "/shared.txt"
    local size = 256 * 1024
    local contents = { a = string.rep("a", size), b = string.rep("b", size + 1) }
    assert.is_true(po.write_file(path, contents.a))
    local function writer(ch)
      local script = proc.tempfile(([[
        local po = require "poengine"
        local data = string.rep(%q, %d)
        for i = 1, 150 do
          assert(po.write_file(%q, data, { sync = i %% 10 == 0 }))
        end
      ]]):format(ch, ch == "a" and size or size + 1, path), ".lua")
      return po.run { argv = { proc.bin, script } }, script
    end
    local fa, sa = writer("a")
    local fb, sb = writer("b")
    local reads = 0
    repeat
      local f = io.open(path, "rb")
      if f then -- always: the path is never missing, but a failed open must not hide a torn read
        local text = f:read("*a")
        f:close()
        assert(text == contents.a or text == contents.b, "a torn read of " .. #text .. " bytes")
        reads = reads + 1
      end
      po.sleep(0.001)
    until fa:done() and fb:done()
    for _, r in ipairs { fa:wait(), fb:wait() } do
      assert.are.equal("ok", r.status, r.stderr)
    end
    os.remove(sa)
    os.remove(sb)
    assert.is_true(reads > 0)
    local final = read(path)
    assert.is_true(final == contents.a or final == contents.b)
    assert.are.same({ "shared.txt" }, listing(dir))
  end)
end)
