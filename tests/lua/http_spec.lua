-- po.http.request against the test server (tests/tools/llm_server.py) on
-- 127.0.0.1: responses, streaming, timeouts, connection failures, cancel,
-- concurrency, and secrets kept out of errors.
local po = require "poengine"
local proc = require "tests.tools.proc"
local llm_server = require "tests.tools.llm_server"

local server = llm_server.for_spec(setup, teardown, before_each)

local function chat_body(model, extra)
  local body = { model = model, messages = { { role = "user", content = "one two three four" } } }
  for k, v in pairs(extra or {}) do
    body[k] = v
  end
  return po.json.encode(body)
end

local function post(model, opts)
  opts = opts or {}
  opts.method = "POST"
  opts.url = opts.url or server.url .. "/v1/chat/completions"
  opts.body = opts.body or chat_body(model, opts.stream_body and { stream = true } or nil)
  opts.stream_body = nil
  opts.headers = opts.headers or { ["Content-Type"] = "application/json" }
  return assert(po.http.request(opts))
end

describe("po.http.request", function()
  it("returns a future of status, lower-cased headers, body, duration and version", function()
    local fut = post("m1")
    assert.is_true(po.is_future(fut))
    local res = assert(fut:wait())
    assert.are.equal(200, res.status)
    assert.are.equal("application/json", res.headers["content-type"])
    assert.is_nil(res.headers["Content-Type"])
    assert.are.equal("echo: one two three four", po.json.decode(res.body).choices[1].message.content)
    assert.is_true(res.duration > 0)
    assert.are.equal("1.1", res.http_version)
  end)

  it("sends the method, headers and body it is given", function()
    assert(post("m1", { headers = { ["Content-Type"] = "application/json", ["X-Custom"] = 42 } }):wait())
    local stats = server:stats()
    assert.are.equal("42", stats.last_headers["x-custom"])
    assert.matches("^poengine/", stats.last_headers["user-agent"])
    assert.is_nil(stats.last_headers["expect"]) -- no 100-continue round trip
    assert.are.equal("m1", stats.last_body.model)
  end)

  it("treats an error status as a response, not an error", function()
    local res, err = post("m#fault=status;status=503"):wait()
    assert.is_nil(err)
    assert.are.equal(503, res.status)
    assert.are.equal("injected failure", po.json.decode(res.body).error.message)
  end)

  it("streams the body to on_chunk in order and keeps none of it", function()
    local chunks, statuses, types = {}, {}, {}
    local res = assert(post("m#token_delay=0.01", {
      stream_body = true,
      on_chunk = function(chunk, status, ctype)
        chunks[#chunks + 1] = chunk
        statuses[status] = true
        types[ctype] = true
      end,
    }):wait())
    assert.are.equal(200, res.status)
    assert.are.equal("", res.body)
    assert.is_true(#chunks > 1) -- the events arrived as they were sent
    assert.are.same({ [200] = true }, statuses)
    assert.are.same({ ["text/event-stream"] = true }, types) -- the response's Content-Type, with every piece
    local all = table.concat(chunks)
    assert.matches("^data: ", all)
    assert.matches("data: %[DONE%]\n\n$", all)
  end)

  it("fails the future with ERUNTIME when on_chunk raises, and stops the transfer", function()
    local calls = 0
    local res, err, code = post("m#token_delay=0.01", {
      stream_body = true,
      on_chunk = function()
        calls = calls + 1
        error("stop right there")
      end,
    }):wait()
    assert.is_nil(res)
    assert.are.equal("ERUNTIME", code)
    assert.matches("stop right there", err)
    assert.are.equal(1, calls)
    assert.are.equal(0, require("poengine_core").http_active())
  end)

  it("times out before the first byte with ttfb_timeout", function()
    local res, err, code = post("m#delay=2", { ttfb_timeout = 0.2 }):wait()
    assert.is_nil(res)
    assert.are.equal("ETIMEDOUT", code)
    assert.matches("ttfb_timeout", err)
  end)

  it("times out on a stalled stream with idle_timeout", function()
    local got = {}
    local res, err, code = post("m#fault=stall;stall=5", {
      stream_body = true,
      idle_timeout = 0.3,
      on_chunk = function(c) got[#got + 1] = c end,
    }):wait()
    assert.is_nil(res)
    assert.are.equal("ETIMEDOUT", code)
    assert.matches("idle_timeout", err)
    assert.is_true(#got >= 1) -- the stream had started
  end)

  it("times out the whole transfer with timeout", function()
    local res, err, code = post("m#delay=2", { timeout = 0.3 }):wait()
    assert.is_nil(res)
    assert.are.equal("ETIMEDOUT", code)
    assert.matches("%(timeout", err)
  end)

  it("reports ECONNREFUSED when nothing listens", function()
    -- A port that was just free: bind nothing there by asking the server's
    -- own port plus a large offset is not reliable, so use port 1 (privileged, unused).
    local res, err, code = po.http.request { url = "http://127.0.0.1:1/" }:wait()
    assert.is_nil(res)
    assert.are.equal("ECONNREFUSED", code)
    assert.matches("^GET http://127.0.0.1:1/: ", err)
  end)

  it("reports ECONN for a reset connection and for a truncated body", function()
    local _, _, code = post("m#fault=reset"):wait()
    assert.are.equal("ECONN", code)
    local _, err, code2 = post("m#fault=truncated"):wait()
    assert.are.equal("ECONN", code2)
    assert.matches("POST http://127.0.0.1:%d+/v1/chat/completions", err)
  end)

  it("cancels a transfer: ECANCELED, and nothing stays in flight", function()
    local fut = post("m#delay=2")
    po.sleep(0.05)
    assert.are.equal(1, require("poengine_core").http_active())
    assert.is_true(fut:cancel())
    local res, err, code = fut:wait()
    assert.is_nil(res)
    assert.are.equal("ECANCELED", code)
    po.sleep(0.01)
    assert.are.equal(0, require("poengine_core").http_active())
  end)

  it("times out a plain reply that stalls after its headers with idle_timeout", function()
    local res, err, code = post("m#fault=stall;stall=5", { idle_timeout = 0.3 }):wait()
    assert.is_nil(res)
    assert.are.equal("ETIMEDOUT", code)
    assert.matches("idle_timeout", err)
  end)

  it("takes a transfer out of libcurl at once when the task waiting on it is canceled", function()
    local chunks = 0
    local task = po.async(function()
      return post("m#token_delay=0.05", {
        stream_body = true,
        on_chunk = function() chunks = chunks + 1 end,
      }):wait()
    end)
    po.sleep(0.1)
    assert.are.same({ active = 1, running = 1 }, po.http.stats())
    assert.is_true(task:cancel())
    assert.are.equal(0, po.http.stats().running)
    local seen = chunks
    po.sleep(0.2)
    assert.are.equal(seen, chunks) -- on_chunk never runs again
    assert.are.same({ active = 0, running = 0 }, po.http.stats())
  end)

  it("leaves alone a transfer that a canceled task waits on but did not start", function()
    local fut = post("m#delay=0.2")
    local task = po.async(function()
      return fut:wait()
    end)
    po.sleep(0.05)
    task:cancel()
    local res = assert(fut:wait())
    assert.are.equal(200, res.status)
  end)

  it("runs many transfers at once", function()
    local futs = {}
    for i = 1, 16 do
      futs[i] = post("m#wait_for=16") -- answered once all 16 are open at once
    end
    local all = assert(po.all(futs))
    for i = 1, 16 do
      assert.are.equal(200, all[i].status)
    end
    -- the server saw all 16 requests open at the same time
    assert.are.equal(16, server:stats().max_concurrent)
  end)

  it("does not hold a request to a host while another response from it streams", function()
    -- An open stream (an SSE feed) from a server in another process, and
    -- requests to the same host meanwhile: each is answered while the
    -- stream stays open. (libcurl's PIPEWAIT held those made while the
    -- stream's connection was being set up until that response ended.)
    local script = os.tmpname()
    assert(po.write_file(script, [[
      local po = require "poengine"
      local srv = assert(po.http.serve { port = 0, routes = {
        ["GET /feed"] = function()
          return 200, { ["Content-Type"] = "text/event-stream" }, function(stream)
            stream:write("data: tick\n\n")
            po.sleep(600) -- open and silent: nothing else moves this connection
          end
        end,
        ["GET /ping"] = function() return 200, {}, "pong" end,
      } })
      io.stdout:write(srv.url, "\n")
      io.stdout:flush()
      srv:wait()
    ]]))
    local out = os.tmpname()
    local server = po.run { argv = { "sh", "-c", 'exec "$0" "$1" > "$2"', po.executable(), script, out } }
    finally(function() -- a failed assertion must not leave the server running
      server:cancel()
      os.remove(script)
      os.remove(out)
    end)
    local url
    while not url do
      po.sleep(0.02)
      local f = io.open(out)
      url = f and f:read("*l")
      if f then
        f:close()
      end
    end
    local chunks = {}
    local feed = po.http.request { url = url .. "/feed", timeout = 120,
      on_chunk = function(c) chunks[#chunks + 1] = c end }
    -- at once, while the feed's connection is still being made, and again
    -- once it streams
    for i = 1, 3 do
      local res = assert(po.http.request { url = url .. "/ping", timeout = 20 }:wait())
      while i == 1 and #chunks == 0 do
        po.sleep(0.01)
      end
      assert.are.equal("pong", res.body)
    end
    assert.is_false(feed:done()) -- the stream was open all along
    feed:cancel()
  end)

  it("works inside po.async tasks", function()
    local tasks = {}
    for i = 1, 4 do
      tasks[i] = po.async(function()
        local res = assert(post("m" .. i):wait())
        return po.json.decode(res.body).model
      end)
    end
    local models = assert(po.all(tasks))
    assert.are.same({ "m1", "m2", "m3", "m4", n = 4 }, models)
  end)

  it("keeps the Authorization header and query-string keys out of errors", function()
    local res, err = po.http.request {
      url = "http://127.0.0.1:1/v1/x?key=sk-query-secret",
      headers = { Authorization = "Bearer sk-header-secret" },
    }:wait()
    assert.is_nil(res)
    assert.not_matches("sk%-query%-secret", err)
    assert.not_matches("sk%-header%-secret", err)
    local ok, raised = pcall(po.http.request, { url = server.url, headers = { Authorization = "Bearer sk-x\r\nEvil: 1" } })
    assert.is_false(ok)
    assert.matches("header 'Authorization' contains a line break", raised)
    assert.not_matches("sk%-x", raised)
  end)

  it("raises on programmer errors, naming the option", function()
    assert.has_error(function() po.http.request { url = server.url, timout = 1 } end,
      "po.http.request: unknown option 'timout'")
    assert.has_error(function() po.http.request { method = "GET" } end, "po.http.request: url is required")
    assert.has_error(function() po.http.request { url = server.url, timeout = -1 } end,
      "po.http.request: timeout must be a non-negative number of seconds")
    assert.has_error(function() po.http.request { url = server.url, on_chunk = 1 } end,
      "po.http.request: on_chunk must be a function, got number")
  end)

  it("returns nil, message, EUNAVAIL when libcurl cannot be loaded", function()
    -- A stand-in libcurl.so.4 without curl's functions, found first by dlopen.
    local dir = os.tmpname()
    os.remove(dir)
    assert(os.execute("mkdir -p " .. proc.quote(dir)) == 0)
    local src = dir .. "/empty.c"
    local f = assert(io.open(src, "w"))
    f:write("int not_curl(void) { return 0; }\n")
    f:close()
    local status = proc.sh("cc -shared -fPIC -o " .. proc.quote(dir .. "/libcurl.so.4") .. " " .. proc.quote(src))
    assert.are.equal(0, status)
    local code, out = proc.sh("LD_LIBRARY_PATH=" .. proc.quote(dir) .. " " .. proc.quote(proc.bin)
      .. [[ -e 'print(po.http.request{url = "http://127.0.0.1:1/"})']])
    proc.sh("rm -rf " .. proc.quote(dir))
    assert.are.equal(0, code)
    assert.matches("^nil\tpo%.http%.request: libcurl is not available: .-\tEUNAVAIL\n$", out)
  end)
end)
