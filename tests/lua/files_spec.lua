-- File I/O on the pool: po.files.read and po.files.write, and po.batch, its
-- deprecated old name.
local po = require "poengine"

local function tempdir()
  local d = os.tmpname()
  os.remove(d)
  assert(os.execute("mkdir -p " .. d .. "/root " .. d .. "/outside") == 0)
  return d
end

local function slurp(path)
  local f = io.open(path, "rb")
  if not f then
    return nil
  end
  local s = f:read("*a")
  f:close()
  return s
end

local function listing(dir)
  local p = io.popen("cd " .. dir .. " && find . | sort")
  local s = p:read("*a")
  p:close()
  return s
end

describe("po.files", function()
  local d
  before_each(function() d = tempdir() end)
  after_each(function() os.execute("rm -rf " .. d) end)

  it("writes files atomically, creating parents, and reads them back in input order", function()
    local files = {}
    for i = 1, 300 do
      files[i] = { path = "dir" .. (i % 7) .. "/sub/f" .. i .. ".txt", content = ("x"):rep(i) .. "\0" .. i }
    end
    local w = po.files.write(files, { root = d .. "/root", sync = true, batch_size = 16 })
    assert.are.equal(300, #w)
    for i = 1, 300 do
      assert.are.same({ ok = true }, w[i])
    end
    local paths = {}
    for i = 300, 1, -1 do
      paths[#paths + 1] = files[i].path
    end
    local r = po.files.read(paths, { root = d .. "/root" })
    for k = 1, 300 do
      local i = 301 - k
      assert.are.equal(files[i].content, r[k].content)
    end
    assert.are.equal("", (io.popen("find " .. d .. " -name '*.tmp-*'"):read("*a")))
  end)

  it("reports a failure per file and goes on with the others", function()
    local r = po.files.read({ d .. "/missing", d .. "/root" })
    assert.are.same({ err = "cannot read '" .. d .. "/missing': No such file or directory", code = "ENOENT" }, r[1])
    assert.are.equal("EISDIR", r[2].code)
    local w = po.files.write({ { path = d .. "/root/ok", content = "1" }, { path = d .. "/root/", content = "2" } })
    assert.is_true(w[1].ok)
    assert.are.same({ err = "cannot write '" .. d .. "/root/': not a file name", code = "EINVAL" }, w[2])
  end)

  it("refuses every path that leads outside the root and writes nothing outside", function()
    local root, out = d .. "/root", d .. "/outside"
    assert(os.execute("echo secret > " .. out .. "/s && ln -s ../outside " .. root .. "/up && ln -s /etc "
      .. root .. "/etc && ln -s ../outside/s " .. root .. "/s && mkdir " .. root .. "/in") == 0)
    local escapes = {
      "../outside/new",              -- .. escape
      "in/../../outside/new",        -- .. escape through a real directory
      out .. "/new",                 -- absolute, outside
      "/etc/po-batch-test",          -- absolute, elsewhere
      "up/new",                      -- relative link leading out
      "up/deeper/new",               -- ... with parents to create
      "etc/po-batch-test",           -- absolute link leading out
    }
    local files = {}
    for i, p in ipairs(escapes) do
      files[i] = { path = p, content = "nope" }
    end
    files[#files + 1] = { path = root .. "/in/inside.txt", content = "fine" } -- absolute, inside
    local w = po.files.write(files, { root = root })
    for i = 1, #escapes do
      assert.are.equal("EOUTSIDE", w[i].code, escapes[i])
      assert.are.equal("cannot write '" .. escapes[i] .. "': the path leads outside the root '" .. root .. "'", w[i].err)
    end
    assert.is_true(w[#files].ok)
    assert.are.equal("fine", slurp(root .. "/in/inside.txt"))
    assert.are.equal(".\n./s\n", listing(out))
    assert.is_nil(slurp("/etc/po-batch-test"))

    local r = po.files.read({ "../outside/s", "up/s", "s", "etc/hostname", out .. "/s", "in/inside.txt" }, { root = root })
    for i = 1, 5 do
      assert.are.equal("EOUTSIDE", r[i].code)
    end
    assert.are.equal("fine", r[6].content)
  end)

  it("follows links that stay inside the root", function()
    local root = d .. "/root"
    assert(os.execute("mkdir " .. root .. "/real && ln -s real " .. root .. "/alias") == 0)
    assert.is_true(po.files.write({ { path = "alias/f", content = "via alias" } }, { root = root })[1].ok)
    assert.are.equal("via alias", po.files.read({ "real/f" }, { root = root })[1].content)
  end)

  it("fails every file when the root cannot be opened, and creates a missing root for writes", function()
    local r = po.files.read({ "a", "b" }, { root = d .. "/nope" })
    assert.are.equal("ENOENT", r[1].code)
    assert.matches("cannot open the root", r[2].err)
    local w = po.files.write({ { path = "a", content = "1" } }, { root = d .. "/made/root" })
    assert.is_true(w[1].ok)
    assert.are.equal("1", slurp(d .. "/made/root/a"))
  end)

  it("yields inside po.async, so several batches run at once", function()
    local futs = {}
    for i = 1, 4 do
      futs[i] = po.async(function()
        return po.files.write({ { path = "t" .. i, content = tostring(i) } }, { root = d .. "/root" })[1].ok
      end)
    end
    assert.are.same({ true, true, true, true, n = 4 }, po.all(futs))
  end)

  it("checks its arguments", function()
    assert.has_error(function() po.files.read("x") end, "po.files.read: paths must be a table of strings, got string")
    assert.has_error(function() po.files.read({ 1 }) end, "po.files.read: paths[1] must be a string, got number")
    assert.has_error(function() po.files.read({}, { rot = "x" }) end, "po.files.read: unknown option 'rot'")
    assert.has_error(function() po.files.read({}, { batch_size = 0 }) end,
      "po.files.read: batch_size must be a whole number of at least 1")
    assert.has_error(function() po.files.write({ { path = "x" } }) end,
      "po.files.write: files[1] must be { path = string, content = string }")
    assert.are.same({}, po.files.read({}))
  end)
end)

describe("po.files.stat and po.files.list", function()
  local d
  before_each(function() d = tempdir() end)
  after_each(function() os.execute("rm -rf " .. d) end)

  it("tells files, directories and links apart without following links, with sizes and times", function()
    assert(po.write_file(d .. "/root/a.txt", "12345"))
    assert(os.execute("ln -s ../outside " .. d .. "/root/away && touch -d '2001-02-03 04:05:06Z' "
      .. d .. "/root/a.txt") == 0)
    local st = assert(po.files.stat(d .. "/root/a.txt"))
    assert.are.same({ type = "file", size = 5 }, { type = st.type, size = st.size })
    assert.are.equal(981173106, math.floor(st.mtime))
    assert.are.equal("link", assert(po.files.stat(d .. "/root/away")).type)
    assert.are.equal("dir", assert(po.files.stat(d .. "/root")).type)
    local list = assert(po.files.list(d .. "/root"))
    table.sort(list, function(x, y) return x.name < y.name end)
    assert.are.same({ "a.txt", "away" }, { list[1].name, list[2].name })
    assert.are.same({ "file", "link" }, { list[1].type, list[2].type })
    assert.are.equal(5, list[1].size)
  end)

  it("lists an empty directory as an empty table", function()
    assert.are.same({}, assert(po.files.list(d .. "/outside")))
  end)

  it("fails with the errno's name: ENOENT, ENOTDIR, EACCES", function()
    local v, msg, code = po.files.stat(d .. "/none")
    assert.is_nil(v)
    assert.are.equal("ENOENT", code)
    assert.truthy(msg:find("po.files.stat: cannot stat '" .. d .. "/none'", 1, true))
    assert(po.write_file(d .. "/root/f", "x"))
    v, msg, code = po.files.list(d .. "/root/f")
    assert.is_nil(v)
    assert.are.equal("ENOTDIR", code)
    assert.truthy(msg:find("po.files.list: cannot list", 1, true))
    if io.popen("id -u"):read("*l") == "0" then
      -- root reads any directory: run the unreadable case as nobody
      local cmd = ("chmod 0700 %s/root && chmod o+x %s && su nobody -s /bin/sh -c '%s -e \"print(select(3, "
        .. "require([[poengine]]).files.list([[%s/root]])))\"'"):format(d, d, po.executable(), d)
      local p = io.popen(cmd .. " 2>&1")
      local out = p:read("*a")
      p:close()
      assert.are.equal("EACCES", out:match("^(%S+)"))
    else
      assert(os.execute("chmod 0 " .. d .. "/root") == 0)
      assert.are.equal("EACCES", select(3, po.files.list(d .. "/root")))
      os.execute("chmod 0700 " .. d .. "/root")
    end
  end)

  it("names the argument a wrong type came in", function()
    assert.has_error(function() po.files.stat(1) end, "po.files.stat: path must be a string, got number")
    assert.has_error(function() po.files.list({}) end, "po.files.list: dir must be a string, got table")
  end)
end)

describe("po.batch", function()
  it("is a deprecated alias of po.files: the same table", function()
    assert.are.equal(po.files, po.batch)
    assert.are.equal(po.files.read, po.batch.read)
  end)
end)
