-- po.http.request's arguments: each malformed one raises naming it (never
-- quoting a header's value, which may be a key), and the header forms it
-- accepts reach the server as given (an in-process po.http.serve echoes
-- them back).
local po = require "poengine"
local proc = require "tests.tools.proc"

describe("po.http.request arguments", function()
  local srv
  before_each(function()
    srv = assert(po.http.serve { port = 0, routes = {
      ["GET /echo"] = function(req)
        return 200, { ["Content-Type"] = "application/json" }, po.json.encode(req.headers)
      end,
    } })
  end)
  after_each(function()
    srv:close()
  end)

  local function raises(opts, message)
    opts.url = opts.url or srv.url .. "/echo"
    local ok, err = pcall(po.http.request, opts)
    assert.is_false(ok)
    assert.are.equal(message, (tostring(err):gsub("^[^:]*:%d+: ", "")))
  end

  it("raises on a malformed header table, name or value, naming the header", function()
    raises({ headers = "X-A: 1" }, "po.http.request: headers must be a table of name = value")
    raises({ headers = { "X-A: 1" } }, "po.http.request: header names must be strings")
    raises({ headers = { ["Bad Name"] = "v" } }, "po.http.request: invalid header name 'Bad Name'")
    raises({ headers = { ["X-A"] = true } }, "po.http.request: header 'X-A' must be a string or a number, got boolean")
    raises({ headers = { ["X-A"] = {} } }, "po.http.request: header 'X-A' must be a string or a number, got table")
    for _, value in ipairs { "sk-secret\r\nX-Injected: 1", "sk-secret\nX", "sk-secret\0tail" } do
      local ok, err = pcall(po.http.request, { url = srv.url .. "/echo", headers = { ["X-Key"] = value } })
      assert.is_false(ok)
      assert.matches("po.http.request: header 'X%-Key' contains a line break or a NUL byte", err)
      assert.is_nil(err:find("sk-secret", 1, true))
    end
  end)

  it("raises on a malformed method, body, url or timeout", function()
    raises({ method = "GE T" }, "po.http.request: invalid method 'GE T'")
    raises({ method = "" }, "po.http.request: invalid method ''")
    raises({ method = 1 }, "po.http.request: method must be a string, got number")
    raises({ body = {} }, "po.http.request: body must be a string, got table")
    raises({ url = 80 }, "po.http.request: url must be a string, got number")
    raises({ timeout = 0 / 0 }, "po.http.request: timeout must be a non-negative number of seconds")
    raises({ idle_timeout = "1" }, "po.http.request: idle_timeout must be a non-negative number of seconds")
    -- a token, but longer than any method the client takes
    raises({ method = string.rep("X", 40) }, "po.http.request: invalid request (method or header lines)")
  end)

  it("sends empty and numeric header values, and its own User-Agent and Expect unless given", function()
    local res = assert(po.http.request { url = srv.url .. "/echo", headers = { ["X-Empty"] = "", ["X-N"] = 42 } }:wait())
    local got = po.json.decode(res.body)
    assert.are.equal("", got["x-empty"])
    assert.are.equal("42", got["x-n"])
    assert.matches("^poengine/", got["user-agent"])
    assert.is_nil(got.expect)
    res = assert(po.http.request { url = srv.url .. "/echo",
      headers = { ["User-Agent"] = "mine/1", Expect = "x-custom" } }:wait())
    got = po.json.decode(res.body)
    assert.are.equal("mine/1", got["user-agent"])
    assert.are.equal("x-custom", got.expect)
  end)

  it("counts no transfers in a process that has made none", function()
    local code, out = proc.sh(proc.quote(proc.bin)
      .. [[ -e 'local s = po.http.stats(); print(s.active, s.running, require("poengine_core").http_active())']])
    assert.are.equal(0, code)
    assert.are.equal("0\t0\t0\n", out)
  end)
end)
