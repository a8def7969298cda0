-- Every error code documented in docs/scripting.md is produced by a test.
-- The code table there is the checklist: each code it lists must have a
-- scenario below that makes a real call return it, or name the spec that
-- does; a code without one fails. Failures that cannot be provoked from
-- outside (out of memory, a failing disk, a broken LMDB, no libcurl) run in
-- a child poengine with tests/tools/faultshim.c preloaded.
local po = require "poengine"
local proc = require "tests.tools.proc"
local llm_server = require "tests.tools.llm_server"
local q = proc.quote

-- the scenarios' temporary directories, removed at the end
local temps = {}
local function tempdir()
  temps[#temps + 1] = proc.tempdir()
  return temps[#temps]
end

local source = os.getenv("POENGINE_SOURCE_DIR") or "."
local shim = (os.getenv("POENGINE_BUILD_DIR") or "build") .. "/tests/libfaultshim.so"
-- What a poengine child needs ahead of the shim under the sanitizers (see
-- tests/CMakeLists.txt); "" in a normal build and with clang.
local sanitizer = os.getenv("POENGINE_EXE_SANITIZER_PRELOAD") or ""
local sanitized = (os.getenv("POENGINE_SANITIZER_PRELOAD") or "") ~= ""

-- The codes of the table that follows "The codes used so far" (first column).
local function documented_codes()
  local text = proc.read(source .. "/docs/scripting.md")
  local table_text = assert(text:match("The codes used so far:%s*\n(.-)\n\n"), "no code table in docs/scripting.md")
  local codes, seen = {}, {}
  for row in table_text:gmatch("[^\n]+") do
    local first = row:match("^|([^|]*)|")
    for code in (first or ""):gmatch("`(E[A-Z]+)`") do
      if not seen[code] then
        seen[code] = true
        codes[#codes + 1] = code
      end
    end
  end
  return codes
end

-- Settles what an API returned: a future is waited for, anything else is
-- already the result.
local function settle(...)
  local first = ...
  if po.is_future(first) then
    return first:wait(30)
  end
  return ...
end

-- Runs a Lua snippet in a child poengine, with the fault shim preloaded and
-- POENGINE_FAULT=fault when fault is given; the snippet ends with `return value, message, code`,
-- printed by the child. Returns those three (value as text) and the child's stderr.
local function in_child(fault, snippet, env_prefix)
  local dir = proc.tempdir()
  local script = dir .. "/scenario.lua"
  local f = assert(io.open(script, "w"))
  f:write("local dir = arg[1]\nlocal v, msg, code = (function()\n", snippet, "\nend)()\n",
    "io.write(tostring(v), '\\t', tostring(msg), '\\t', tostring(code), '\\n')\n")
  f:close()
  local env = ""
  if fault then
    env = "POENGINE_FAULT=" .. q(fault) .. " LD_PRELOAD=" .. q(sanitizer ~= "" and (sanitizer .. ":" .. shim) or shim)
  end
  local status, out, err = proc.sh((env_prefix or "") .. "env " .. env .. " " .. q(proc.bin) .. " " .. q(script)
    .. " " .. q(dir))
  proc.rmdir(dir)
  assert.are.equal(0, status, err)
  local v, msg, code = out:match("^(.-)\t(.-)\t(.-)\n$")
  assert(v, "the child printed no result: " .. out .. err)
  if v == "nil" then
    v = nil
  end
  return v, msg, code, err
end

-- A fault the shim must report having injected.
local function injected(fault, snippet)
  local v, msg, code, err = in_child(fault, snippet)
  assert.truthy(err:find("faultshim: " .. fault:match("^[%w_]+") .. " failed", 1, true), "the fault was never hit: " .. err)
  return v, msg, code
end

local server
local function llm(kind, model)
  local paths = { openai = "/v1", anthropic = "", ollama = "" }
  return po.llm.provider(kind, { base_url = server.url .. paths[kind], api_key = "sk-test", model = model })
end

-- code -> scenarios; a scenario is { what, fn } (fn returns nil, message,
-- code) or { what, spec = "file in tests/lua" } for a code another spec
-- produces in a setting too large to repeat here.
local produce = {
  ETIMEDOUT = { { "a wait past its timeout", function() return po.future():wait(0.01) end } },
  ECANCELED = { { "a canceled future", function()
    local f = po.future()
    f:cancel()
    return f:wait()
  end } },
  ERUNTIME = { { "an error inside po.async", function() return po.async(function() error("boom") end):wait(5) end } },
  EDEADLK = { { "a wait on a future nothing can settle", function() return po.future():wait() end } },
  EFAILED = { { "fut:reject's default code", function()
    local f = po.future()
    f:reject("refused")
    return f:wait()
  end } },
  EJSON = { { "malformed JSON", function() return po.json.decode("{") end } },
  ENOCYCLE = { { "a cycle that is not active", function() return po.metrics.collector():end_cycle("nope", true) end } },
  EIO = { { "a write whose fsync fails (shim)", function()
    return injected("fsync:1", "return po.write_file(dir .. '/out.txt', 'x')")
  end } },
  EPERM = { { "a store directory that cannot be created", function() return po.store.log("/proc/self/nope", "x") end } },
  ESCHEMA = { { "a store written by a newer poengine", spec = "cache_spec.lua" } },
  ESTORE = { { "LMDB commits failing with EIO (shim)", function()
    return injected("mdb_txn_commit:1+:EIO", "return po.store.log(dir .. '/store', 'log')")
  end } },
  EMAPFULL = { { "an LMDB map that never has room (shim)", function()
    return injected("mdb_put:1+:MDB_MAP_FULL", "return po.store.log(dir .. '/store', 'log')")
  end } },
  ETOOBIG = { { "a cache entry larger than max_bytes", function()
    return assert(po.cache.open { namespace = "error-codes-" .. po.now(), max_bytes = 100 }):set("k", ("y"):rep(200))
  end } },
  EEMBED = { { "a cache embed function that fails", spec = "cache_spec.lua" } },
  EINVAL = {
    { "a pool job result that cannot be copied", function()
      return po.pool.submit(function() return { f = function() end } end):wait(30)
    end },
    { "a path that names no file", function() return po.write_file(tempdir() .. "/", "x") end },
    { "a malformed URL", function() return settle(po.http.request { url = "http://[::1" }) end },
    { "an unsupported scheme", function() return settle(po.http.request { url = "gopher2://127.0.0.1/" }) end },
  },
  ENOMEM = { { "allocations of 1 MB or more failing (shim)", function()
    if sanitized then
      -- ASan's malloc (preloaded, or linked into the executable) comes first
      -- and never calls the shim's.
      return nil, "the sanitizer's allocator cannot be failed by the shim", "SKIP"
    end
    local v, msg, code = in_child("malloc>=1000000:1+", "return po.json.decode('\"' .. ('x'):rep(2 ^ 21) .. '\"')")
    return v, msg, code
  end } },
  EOUTSIDE = { { "a path that climbs out of its root", function()
    local w = po.files.write({ { path = "../escaped.txt", content = "x" } }, { root = tempdir() })
    return nil, w[1].err, w[1].code
  end } },
  ENOENT = { { "a write into a directory that does not exist", function()
    return po.write_file(tempdir() .. "/missing/out.txt", "x")
  end } },
  EACCES = { { "a write into a read-only directory", function()
    local dir = tempdir()
    assert(os.execute("chmod 0555 " .. q(dir)) == 0)
    local snippet = "return po.write_file(" .. string.format("%q", dir .. "/out.txt") .. ", 'x')"
    -- root writes anywhere: then the write runs as nobody
    local _, uid = proc.sh("id -u")
    if tonumber(uid) == 0 then
      local v, msg, code = in_child(nil, snippet, "setpriv --reuid=65534 --regid=65534 --clear-groups ")
      return v, msg, code
    end
    return po.write_file(dir .. "/out.txt", "x")
  end } },
  EISDIR = { { "a write over a directory", function() return po.write_file(tempdir(), "x") end } },
  ECONNREFUSED = { { "a port nobody listens on", function()
    return settle(po.http.request { url = "http://127.0.0.1:1/", timeout = 10 })
  end } },
  ECONN = { { "a connection reset by the server", function()
    return llm("openai"):complete { model = "m#fault=reset", prompt = "hi" }
  end } },
  ETLS = { { "https to a server that speaks plain HTTP", function()
    return settle(po.http.request { url = "https://127.0.0.1:" .. server.port .. "/", timeout = 10 })
  end } },
  EUNAVAIL = { { "libcurl that cannot be loaded (shim)", function()
    return injected("dlopen~curl:1+", "return po.http.request { url = 'http://127.0.0.1:1/' }")
  end } },
  EHTTP = { { "a server error status", function()
    return llm("openai"):complete { model = "m#fault=status;status=500", prompt = "hi" }
  end } },
  ECONTEXT = { { "a context-window error", function()
    return llm("anthropic"):complete { model = "m#fault=context", prompt = "hi" }
  end } },
  EPROTO = {
    { "a reply of the wrong content type", function()
      return llm("ollama"):complete { model = "m#fault=wrong_type", prompt = "hi" }
    end },
  },
  EBUDGET = { { "a router whose budget is spent", spec = "llm_router_spec.lua" } },
  ECOOLDOWN = { { "a router whose deployments all cool down", spec = "llm_router_spec.lua" } },
  ECASSETTE = { { "a cassette without the request", spec = "llm_cassette_spec.lua" } },
  ERATELIMIT = { { "a rate-limited deployment", spec = "llm_router_codes_spec.lua" } },
  EOVERLOADED = { { "an overloaded deployment", spec = "llm_router_codes_spec.lua" } },
  EQUOTA = { { "a deployment out of quota", spec = "llm_router_codes_spec.lua" } },
  EINVALID = { { "a request the server refuses", spec = "llm_router_codes_spec.lua" } },
  EAUTH = { { "a key the server refuses", spec = "llm_router_codes_spec.lua" },
    { "a Redis password the server refuses", spec = "redis_spec.lua" } },
  EUNSUPPORTED = { { "a field the adapter has no place for", spec = "llm_router_codes_spec.lua" },
    { "a rediss:// URL", spec = "redis_spec.lua" } },
  EREDIS = { { "an error reply from Redis", spec = "redis_spec.lua" } },
  ESTEPS = { { "a tool loop past max_steps", spec = "llm_tool_loop_spec.lua" } },
  EBUSY = { { "removing a run whose process is running", spec = "runs_spec.lua" } },
  EBENCH = { { "a run's best that fails the validators when timed again", spec = "runs_spec.lua" } },
  ETASK = { { "a task file that returns no table", function()
    local path = tempdir() .. "/task.lua"
    assert(po.write_file(path, "return 42"))
    return po.optimizer.load_task(path)
  end } },
}

-- What the message of a scenario must say, where the cause is ours to know.
local says = {
  ["a wait past its timeout"] = "^timed out after 0.01 s$",
  ["a task file that returns no table"] = "must return a table, got number$",
  ["fut:reject's default code"] = "^refused$",
  ["a write whose fsync fails (shim)"] = "Input/output error$",
  ["LMDB commits failing with EIO (shim)"] = "^po%.store%.log: Input/output error$",
  ["an LMDB map that never has room (shim)"] = "map reached its limit",
  ["allocations of 1 MB or more failing (shim)"] = "^po%.json%.decode: out of memory$",
  ["a malformed URL"] = "^GET http://%[::1: ",
  ["an unsupported scheme"] = 'Protocol "gopher2" not supported',
  ["a write into a read-only directory"] = "Permission denied$",
  ["libcurl that cannot be loaded (shim)"] = "^po%.http%.request: libcurl is not available: cannot load",
  ["https to a server that speaks plain HTTP"] = "^GET https://127%.0%.0%.1:%d+/: .*SSL",
  ["an openai stream cut before its end marker"] = "the stream ended before data: %[DONE%]$",
  ["an anthropic stream cut before its end marker"] = "the stream ended before message_stop$",
  ["an ollama stream cut before its end marker"] = "the stream ended before its done line$",
}

-- A stream cut cleanly before its end marker, for each streaming provider.
for kind, file in pairs { openai = "openai_cut.sse", anthropic = "anthropic_cut.sse", ollama = "ollama_cut.ndjson" } do
  table.insert(produce.EPROTO, { "an " .. kind .. " stream cut before its end marker", function()
    return llm(kind):complete { model = "m#fault=replay;file=" .. file, prompt = "hi", stream = true }
  end })
end

describe("the documented error codes", function()
  setup(function()
    server = llm_server.start()
  end)
  teardown(function()
    server:stop()
    for _, dir in ipairs(temps) do
      proc.rmdir(dir)
    end
  end)

  local codes = documented_codes()

  it("are read from docs/scripting.md", function()
    assert.is_true(#codes >= 30, "only " .. #codes .. " codes parsed")
    local documented = {}
    for _, code in ipairs(codes) do
      documented[code] = true
    end
    -- and nothing here tests a code the table does not list
    for code in pairs(produce) do
      assert.is_true(documented[code], code .. " is produced here but not documented")
    end
  end)

  for _, code in ipairs(codes) do
    it("produces " .. code, function()
      local scenarios = produce[code]
      assert(scenarios, code .. " is documented but no test produces it")
      for _, s in ipairs(scenarios) do
        if s.spec then
          local text = proc.read(source .. "/tests/lua/" .. s.spec)
          assert.truthy(text:find('"' .. code .. '"', 1, true), s.spec .. " does not produce " .. code)
        else
          local v, msg, got = s[2]()
          if got == "SKIP" then
            print("skipped " .. code .. " (" .. s[1] .. "): " .. msg)
          else
            assert.is_nil(v, s[1])
            assert.are.equal(code, got, s[1] .. ": " .. tostring(msg))
            assert.is_string(msg)
            assert.matches(says[s[1]] or ".", msg)
          end
        end
      end
    end)
  end
end)

describe("the fault shim", function()
  it("fails posix_spawn: a run reports it could not start", function()
    local v, msg = injected("posix_spawn:1+",
      "local r = po.run_sync { argv = { '/bin/true' } } return r.status, r.error")
    assert.are.equal("error", v)
    assert.matches("Resource temporarily unavailable", msg)
  end)

  it("fails a write: an export reports EIO", function()
    local _, msg, code = injected("write:1+", "return po.write_file(dir .. '/out.txt', 'x', { sync = false })")
    assert.are.equal("EIO", code)
    assert.matches("Input/output error", msg)
  end)
end)
