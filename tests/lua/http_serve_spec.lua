-- po.http.serve through real requests on 127.0.0.1: po.http.request for
-- the ordinary ones, curl and a raw Python socket for what a polite client
-- never sends (paths with "..", slow or oversized requests).
local po = require "poengine"
local proc = require "tests.tools.proc"

local servers = {}

local function serve(opts)
  opts.port = opts.port or 0
  local srv = assert(po.http.serve(opts))
  servers[#servers + 1] = srv
  return srv
end

local function get(srv, path, opts)
  opts = opts or {}
  opts.url = srv.url .. path
  opts.timeout = opts.timeout or 20
  return po.http.request(opts):wait()
end

-- Runs fn as a task and waits for it, so the server is served while fn
-- waits on its clients.
local function run(fn)
  assert(po.async(function()
    fn()
    return true
  end):wait())
end

-- A raw client in Python: sends `send`, then prints what it reads until
-- the server closes, or "OPEN" if it is still open after `wait` seconds.
local RAW = [[
import socket, sys
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])))
s.sendall(sys.argv[2].encode("latin-1"))
s.settimeout(float(sys.argv[3]))
out = b""
try:
    while True:
        b = s.recv(65536)
        if not b:
            break
        out += b
except socket.timeout:
    out += b"OPEN"
except ConnectionResetError:
    out += b"RESET"
sys.stdout.write(out.decode("latin-1"))
]]

local function raw(srv, text, wait)
  local res = po.run({ argv = { "python3", "-c", RAW, tostring(srv.port), text, tostring(wait or 20) } }):wait()
  assert(res.status == "ok", res.stderr)
  return res.stdout
end

-- curl's status code, or with body = true its body.
local function curl(args, body)
  local argv = { "curl", "-s", "--max-time", "20", "-o", body and "-" or "/dev/null" }
  argv[#argv + 1] = "-w"
  argv[#argv + 1] = body and "" or "%{http_code}"
  for _, a in ipairs(args) do
    argv[#argv + 1] = a
  end
  return po.run({ argv = argv }):wait().stdout
end

after_each(function()
  for _, srv in ipairs(servers) do
    srv:close()
  end
  servers = {}
end)

describe("po.http.serve", function()
  it("listens on the port it reports and routes exact and prefix paths, the longest route first", function()
    local srv = serve {
      routes = {
        ["GET /a"] = function()
          return 200, { ["Content-Type"] = "text/plain" }, "exact"
        end,
        ["GET /runs/*"] = function(req)
          return 200, nil, "runs " .. req.path .. " " .. req.route
        end,
        ["GET /runs/special/*"] = function(req)
          return 200, nil, "special " .. req.path
        end,
        ["POST /a"] = function(req)
          return 201, { ["X-Len"] = #req.body }, req.body
        end,
      },
    }
    assert.is_true(srv.port > 0)
    assert.are.equal("http://127.0.0.1:" .. srv.port, srv.url)
    run(function()
      local r = assert(get(srv, "/a"))
      assert.are.same({ 200, "exact", "text/plain" }, { r.status, r.body, r.headers["content-type"] })
      assert.are.equal("runs /runs/x/y /runs/*", assert(get(srv, "/runs/x/y")).body)
      assert.are.equal("runs /runs /runs/*", assert(get(srv, "/runs")).body)
      assert.are.equal("special /runs/special/1", assert(get(srv, "/runs/special/1")).body)
      assert.are.equal(404, assert(get(srv, "/runsx")).status)
      assert.are.equal(404, assert(get(srv, "/nothing")).status)
      r = assert(get(srv, "/a", { method = "POST", body = "hello" }))
      assert.are.same({ 201, "hello", "5" }, { r.status, r.body, r.headers["x-len"] })
      r = assert(get(srv, "/a", { method = "DELETE" }))
      assert.are.equal(405, r.status)
      assert.are.equal("GET, POST", r.headers.allow)
      r = assert(get(srv, "/a", { method = "HEAD" }))
      assert.are.same({ 200, "" }, { r.status, r.body })
    end)
  end)

  it("gives the handler the method, decoded path, query, lower-cased headers, body and remote address", function()
    local seen
    local srv = serve {
      routes = {
        ["PUT /echo/*"] = function(req)
          seen = req
          return 204
        end,
      },
    }
    run(function()
      local r = assert(get(srv, "/echo/a%20b?x=1&y=two+words&z=%26", {
        method = "PUT",
        headers = { ["X-Thing"] = "v1", ["Content-Type"] = "text/plain" },
        body = "the body",
      }))
      assert.are.equal(204, r.status)
    end)
    assert.are.equal("PUT", seen.method)
    assert.are.equal("/echo/a b", seen.path)
    assert.are.equal("x=1&y=two+words&z=%26", seen.query_string)
    assert.are.same({ x = "1", y = "two words", z = "&" }, seen.query)
    assert.are.equal("v1", seen.headers["x-thing"])
    assert.are.equal("text/plain", seen.headers["content-type"])
    assert.are.equal("the body", seen.body)
    assert.matches("^127%.0%.0%.1:%d+$", seen.remote)
  end)

  it("answers 500 with a generic body when a handler raises or returns nonsense", function()
    local srv = serve {
      routes = {
        ["GET /boom"] = function()
          error "secret detail"
        end,
        ["GET /bad"] = function()
          return "ok"
        end,
      },
    }
    run(function()
      local r = assert(get(srv, "/boom"))
      assert.are.equal(500, r.status)
      assert.is_nil(r.body:find "secret")
      assert.are.equal(500, assert(get(srv, "/bad")).status)
    end)
    assert.are.equal(2, srv:stats().errors)
  end)

  it("refuses a body over max_body_bytes with 413 before the handler runs", function()
    local ran = false
    local srv = serve {
      max_body_bytes = 100,
      routes = {
        ["POST /up"] = function(req)
          ran = true
          return 200, nil, tostring(#req.body)
        end,
      },
    }
    run(function()
      assert.are.equal(413, assert(get(srv, "/up", { method = "POST", body = ("x"):rep(101) })).status)
      assert.are.equal("100", assert(get(srv, "/up", { method = "POST", body = ("x"):rep(100) })).body)
      -- chunked, so no Content-Length to refuse up front
      local out = raw(srv, "POST /up HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
        .. "c8\r\n" .. ("y"):rep(200) .. "\r\n0\r\n\r\n")
      assert.matches("^HTTP/1%.1 413", out)
    end)
    assert.is_true(ran)
    assert.are.equal(2, srv:stats().rejected)
  end)

  it("refuses oversized headers with 431 or drops the connection", function()
    local srv = serve {
      max_header_bytes = 1024,
      routes = {
        ["GET /"] = function()
          return 200, nil, "ok"
        end,
      },
    }
    run(function()
      local r, _, code = get(srv, "/", { headers = { ["X-Big"] = ("b"):rep(2000) } })
      assert.is_true((r and r.status == 431) or code == "ECONN", tostring(r and r.status or code))
      r, _, code = get(srv, "/", { headers = { ["X-Big"] = ("b"):rep(100000) } })
      assert.is_true((r and r.status == 431) or code == "ECONN", tostring(r and r.status or code))
      assert.are.equal(200, assert(get(srv, "/", { headers = { ["X-Small"] = ("s"):rep(500) } })).status)
    end)
  end)

  it("answers 400 to a path with a '..' segment or a NUL, before any handler", function()
    local ran = false
    local srv = serve {
      routes = {
        ["GET /*"] = function()
          ran = true
          return 200, nil, "ok"
        end,
      },
    }
    run(function()
      assert.are.equal("400", curl { "--path-as-is", srv.url .. "/a/../b" })
      assert.are.equal("400", curl { "--path-as-is", srv.url .. "/.." })
      assert.are.equal("400", curl { "--path-as-is", srv.url .. "/a/%2e%2e/b" })
      assert.are.equal("400", curl { "--path-as-is", srv.url .. "/a%2F..%2Fb" })
      assert.are.equal("400", curl { "--path-as-is", srv.url .. "/a%00b" })
      assert.are.equal("400", curl { "--path-as-is", srv.url .. "/a%zz" })
      assert.is_false(ran)
      assert.are.equal("200", curl { "--path-as-is", srv.url .. "/a/..b/c.." })
    end)
    assert.is_true(ran)
  end)

  it("drops a client that stays idle longer than timeout", function()
    local srv = serve {
      timeout = 1,
      routes = {
        ["GET /"] = function()
          return 200, nil, "ok"
        end,
      },
    }
    run(function()
      -- headers never finished: without the timeout the read would end with OPEN
      local out = raw(srv, "GET / HTTP/1.1\r\nHost: x\r\n", 30)
      assert.is_nil(out:find "OPEN")
      assert.are.equal(200, assert(get(srv, "/")).status) -- the server goes on
    end)
  end)

  it("requires a token off loopback, and checks it", function()
    local srv, err, code = po.http.serve { host = "0.0.0.0", port = 0, routes = {} }
    assert.is_nil(srv)
    assert.are.equal("EINVAL", code)
    assert.matches("token", err)
    srv, err, code = po.http.serve { host = "localhost", port = 0, routes = {} }
    assert.are.same({ nil, "EINVAL" }, { srv, code })
    assert.matches("numeric", err)

    local open = serve { host = "0.0.0.0", token = "s3cret-token", routes = {} }
    assert.is_true(open.port > 0)
    local guarded = serve {
      token = "s3cret-token",
      routes = {
        ["GET /x"] = function()
          return 200, nil, "in"
        end,
      },
    }
    run(function()
      local r = assert(get(guarded, "/x"))
      assert.are.same({ 401, "Bearer" }, { r.status, r.headers["www-authenticate"] })
      r = assert(get(guarded, "/x", { headers = { Authorization = "Bearer s3cret-tokeN" } }))
      assert.are.equal(401, r.status)
      r = assert(get(guarded, "/x", { headers = { Authorization = "Bearer s3cret-token-and-more" } }))
      assert.are.equal(401, r.status)
      r = assert(get(guarded, "/x", { headers = { Authorization = "Basic s3cret-token" } }))
      assert.are.equal(401, r.status)
      r = assert(get(guarded, "/x", { headers = { Authorization = "Bearer s3cret-token" } }))
      assert.are.same({ 200, "in" }, { r.status, r.body })
    end)
    assert.are.equal(4, guarded:stats().rejected)
  end)

  it("reports a port in use, and raises on malformed options and routes", function()
    local a = serve { routes = {} }
    local srv, _, code = po.http.serve { port = a.port, routes = {} }
    assert.are.same({ nil, "EADDRINUSE" }, { srv, code })
    assert.has_error(function()
      po.http.serve { routes = { ["GET nopath"] = function() end } }
    end)
    assert.has_error(function()
      po.http.serve { routes = { ["GET /x"] = "not a function" } }
    end)
    assert.has_error(function()
      po.http.serve { routes = {}, prot = 8080 }
    end, "po.http.serve: unknown option 'prot'")
    assert.has_error(function()
      po.http.serve { routes = {}, port = 70000 }
    end)
  end)

  it("serves on IPv6 loopback", function()
    local srv = po.http.serve {
      host = "::1",
      port = 0,
      routes = {
        ["GET /"] = function(req)
          return 200, nil, req.remote
        end,
      },
    }
    if not srv then
      pending "no IPv6 loopback here"
      return
    end
    servers[#servers + 1] = srv
    assert.are.equal("http://[::1]:" .. srv.port, srv.url)
    run(function()
      assert.matches("^%[::1%]:%d+$", assert(get(srv, "/")).body)
    end)
  end)

  it("streams a body that the client receives while the handler is still writing", function()
    local received = po.future()
    local srv = serve {
      routes = {
        ["GET /events"] = function()
          return 200, { ["Content-Type"] = "text/event-stream" }, function(stream)
            assert(stream:write "data: one\n\n")
            -- the next event only once the client has the first one
            assert(received:wait(20))
            assert(stream:write "data: two\n\n")
          end
        end,
      },
    }
    local chunks = {}
    run(function()
      local r = assert(get(srv, "/events", {
        on_chunk = function(chunk, status, ctype)
          chunks[#chunks + 1] = chunk
          assert.are.equal("text/event-stream", ctype)
          if table.concat(chunks):find "data: one\n\n" then
            received:resolve(true)
          end
        end,
      }))
      assert.are.equal(200, r.status)
    end)
    assert.are.equal("data: one\n\ndata: two\n\n", table.concat(chunks))
  end)

  it("tells a stream the client has gone: write returns nil, 'closed'", function()
    local outcome = po.future()
    local srv = serve {
      routes = {
        ["GET /forever"] = function()
          return 200, nil, function(stream)
            for _ = 1, 2000 do
              local ok, err = stream:write(("x"):rep(1000))
              if not ok then
                outcome:resolve(err)
                return
              end
              po.sleep(0.005)
            end
            outcome:resolve "never closed"
          end
        end,
      },
    }
    run(function()
      local _, _, code = get(srv, "/forever", {
        on_chunk = function()
          error "enough"
        end,
      })
      assert.are.equal("ERUNTIME", code)
      assert.are.equal("closed", outcome:wait(30))
    end)
  end)

  it("answers 100 concurrent clients", function()
    local srv = serve {
      routes = {
        ["GET /n/*"] = function(req)
          po.sleep(0.01)
          return 200, nil, req.path:match "%d+$"
        end,
      },
    }
    run(function()
      local futs = {}
      for i = 1, 100 do
        futs[i] = po.http.request { url = srv.url .. "/n/" .. i, timeout = 60 }
      end
      for i = 1, 100 do
        local r = assert(futs[i]:wait())
        assert.are.same({ 200, tostring(i) }, { r.status, r.body })
      end
    end)
    assert.are.equal(100, srv:stats().requests)
  end)

  it("keeps connections past max_connections waiting until one closes", function()
    local gate, started = po.future(), { po.future(), po.future() }
    local n, finished, third_saw = 0, 0, nil
    local srv = serve {
      max_connections = 2,
      routes = {
        ["GET /hold"] = function()
          n = n + 1
          if n <= 2 then
            started[n]:resolve(true)
            gate:wait()
          else
            third_saw = finished
          end
          finished = finished + 1
          return 200, nil, "held"
        end,
      },
    }
    run(function()
      local clients = {}
      for i = 1, 2 do
        clients[i] = po.run { argv = { "curl", "-s", "--max-time", "20", srv.url .. "/hold" } }
      end
      assert(po.all(started, 20))
      clients[3] = po.run { argv = { "curl", "-s", "--max-time", "20", srv.url .. "/hold" } }
      po.sleep(0.5) -- time for the third to be served, were it not held back
      gate:resolve(true)
      for i = 1, 3 do
        assert.are.equal("held", clients[i]:wait().stdout)
      end
    end)
    assert.is_true(third_saw >= 1) -- served only once a slot was free
  end)

  it("serves other requests while a handler waits", function()
    local gate = po.future()
    local srv = serve {
      routes = {
        ["GET /slow"] = function()
          gate:wait()
          po.sleep(0.01)
          return 200, nil, "slow"
        end,
        ["GET /fast"] = function()
          return 200, nil, "fast"
        end,
      },
    }
    run(function()
      local slow = po.http.request { url = srv.url .. "/slow", timeout = 30 }
      -- (curl processes: po.http.request would wait to reuse the slow connection)
      for _ = 1, 3 do
        assert.are.equal("fast", curl({ srv.url .. "/fast" }, true))
      end
      assert.is_false(slow:done())
      gate:resolve(true)
      assert.are.equal("slow", assert(slow:wait()).body)
    end)
  end)

  it("closes with handlers still waiting: their streams see 'closed', srv:wait returns", function()
    local gate, outcome, w_started = po.future(), po.future(), po.future()
    local srv = serve {
      routes = {
        ["GET /s"] = function()
          return 200, nil, function(stream)
            assert(stream:write "first")
            gate:wait()
            outcome:resolve(select(2, stream:write "second"))
          end
        end,
        ["GET /w"] = function()
          w_started:resolve(true)
          gate:wait()
          return 200, nil, "late"
        end,
      },
    }
    local waited = po.async(function()
      return srv:wait()
    end)
    run(function()
      local got = po.future()
      local s = po.http.request {
        url = srv.url .. "/s",
        timeout = 30,
        on_chunk = function()
          got:resolve(true)
        end,
      }
      -- (curl: po.http.request would wait for the stream's connection)
      local w = po.run {
        argv = { "curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", "--max-time", "20", srv.url .. "/w" },
      }
      assert(got:wait(20))
      assert(w_started:wait(20))
      srv:close()
      srv:close()
      gate:resolve(true)
      assert.are.equal("closed", outcome:wait(20))
      assert.are.equal("000", w:wait().stdout) -- no answer: the connection was dropped
      s:wait()
    end)
    assert.is_true(waited:wait(5))
    assert.are.same({ requests = 0, rejected = 0, active = 0, errors = 0 }, srv:stats())
  end)

  it("lets a handler close its own server", function()
    local srv
    srv = serve {
      routes = {
        ["POST /shutdown"] = function()
          srv:close()
          return 200, nil, "bye"
        end,
      },
    }
    run(function()
      get(srv, "/shutdown", { method = "POST" })
    end)
    assert.is_true(srv:wait(5))
    run(function()
      local _, _, code = get(srv, "/shutdown", { method = "POST" })
      assert.are.equal("ECONNREFUSED", code)
    end)
  end)

  it("frees everything when the Lua state closes with a server open and requests in flight", function()
    -- A child poengine: under scripts/test --sanitize, LeakSanitizer and
    -- ASan fail its exit for a leak or a use after free.
    local script = proc.tempfile([[
local po = require "poengine"
local started = { po.future(), po.future() }
local srv = assert(po.http.serve { routes = {
  ["GET /s"] = function()
    started[1]:resolve(true)
    return 200, nil, function(stream)
      stream:write "x"
      po.sleep(0.2)
      stream:write "y"
    end
  end,
  ["GET /w"] = function()
    started[2]:resolve(true)
    po.sleep(0.2)
    return 200, nil, "w"
  end,
} })
for _, path in ipairs { "/s", "/w" } do
  po.run { argv = { "curl", "-s", "--max-time", "10", srv.url .. path } }
end
assert(po.all(started, 10))
print "served"
]], ".lua")
    local status, out, err = proc.poengine(proc.quote(script))
    os.remove(script)
    assert.are.equal(0, status, err)
    assert.are.equal("served\n", out)
    assert.is_nil(err:find "Sanitizer")
  end)
end)
