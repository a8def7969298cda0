-- po.llm's programmer errors, each raised at the caller's line and naming
-- the function and the argument; the normalization of tool calls a reply
-- or a client of the caller's own hands over (OpenAI's shape, text
-- arguments, none at all, malformed ones); and a lua provider's answers of
-- the wrong type.
local po = require "poengine"
local llm = po.llm
local response = require "poengine.llm.response"
local sse = require "poengine.llm.sse"

-- Calls fn(...) from this file and checks that it raises `message`, with
-- this file's line as the position (the error names the caller's line).
local function raises_here(message, fn, ...)
  local args = { n = select("#", ...), ... }
  local ok, err = pcall(function() fn(unpack(args, 1, args.n)) end)
  assert.is_false(ok, "expected an error: " .. message)
  assert.truthy(tostring(err):match("^[^:]*llm_args_spec%.lua:%d+: "), "not at the caller's line: " .. tostring(err))
  assert.are.equal(message, (tostring(err):gsub("^[^:]*:%d+: ", "")))
end

local function lua_provider(fn)
  return llm.provider("lua", { model = "m", fn = fn })
end

local HI = { messages = { { role = "user", content = "hi" } } }

describe("po.llm's argument checks", function()
  it("provider: kind, options, body limits, the lua provider's fn", function()
    raises_here("po.llm.provider: kind must be a string, got number", llm.provider, 5)
    raises_here("po.llm.provider: options must be a table, got string", llm.provider, "openai", "x")
    raises_here("po.llm.provider: max_body must be a positive number of bytes, got 0", llm.provider, "openai",
      { max_body = 0 })
    raises_here("po.llm.provider: the lua provider needs fn = function(request, on_token)", llm.provider, "lua", {})
  end)

  it("provider:complete: a model from the provider or the request", function()
    local p = llm.provider("lua", { fn = function() return "x" end })
    raises_here("provider:complete: no model: give the provider a model or the request one", p.complete, p, HI)
  end)

  it("router: options, deployments, numbers, cache, and methods called with a dot", function()
    local d = { provider = "lua", model = "m", fn = function() return "x" end }
    raises_here("po.llm.router: options must be a table, got string", llm.router, "x")
    raises_here("po.llm.router: deployments[1] must be a table, got string", llm.router, { deployments = { "openai" } })
    raises_here("po.llm.router: unknown option 'deployments[1].wieght'", llm.router,
      { deployments = { { provider = "lua", fn = d.fn, wieght = 2 } } })
    raises_here("po.llm.router: deployments[1].weight must be a positive number, got 0", llm.router,
      { deployments = { { provider = "lua", fn = d.fn, weight = 0 } } })
    raises_here("po.llm.router: shared must be a table, got string", llm.router, { deployments = { d }, shared = "redis" })
    raises_here("po.llm.router: retries must be a non-negative number, got -1", llm.router,
      { deployments = { d }, retries = -1 })
    raises_here("po.llm.router: timeout must be a positive number, got 0", llm.router, { deployments = { d }, timeout = 0 })
    raises_here("po.llm.router: cache must be a po.cache (po.cache.open{...}) or false", llm.router,
      { deployments = { d }, cache = { get = true } })
    local r = llm.router { deployments = { d } }
    raises_here("router:complete: opts must be a table, got string", r.complete, r, HI, "fast")
    raises_here("router:complete: opts.cache.ttl must be a non-negative number of seconds", r.complete, r, HI,
      { cache = { ttl = -5 } })
    raises_here("router:flush: called on a nil (use r:flush())", r.flush)
    raises_here("router:complete_async: called on a table (use r:complete_async)", r.complete_async, HI)
    assert.are.equal("poengine.llm.router (1 deployments, ordered)", tostring(r))
  end)

  it("cassette: options, wrap, replay_pace, and complete called with a dot", function()
    raises_here("po.llm.cassette: options must be a table, got nil", llm.cassette)
    raises_here("po.llm.cassette: wrap must be a router or a provider", llm.cassette,
      { path = "/tmp/x.jsonl", mode = "record", wrap = {} })
    raises_here("po.llm.cassette: replay_pace must be a non-negative number of seconds, got -1", llm.cassette,
      { path = "/tmp/x.jsonl", mode = "record", wrap = lua_provider(function() return "x" end), replay_pace = -1 })
  end)

  it("embed: options, cache, deployment and texts", function()
    local p = llm.provider("openai", { model = "text-embedding-3-small", api_key = "sk-test-0123456789abcdefghij",
      base_url = "http://127.0.0.1:9" })
    raises_here("po.llm.embed: options must be a table, got string", llm.embed, p, "x", "fast")
    raises_here("po.llm.embed: cache must be a po.cache", llm.embed, p, "x", { cache = {} })
    raises_here("po.llm.embed: deployment must be a provider, a router deployment or { provider = kind, ... }, got number",
      llm.embed, 5, "x")
    raises_here("po.llm.embed: texts must be a string or a list of strings, got number", llm.embed, p, 5)
  end)

  it("request: tool types, content, messages, both messages and prompt, stop", function()
    local p = lua_provider(function() return "x" end)
    local function req(extra)
      local r = { messages = { { role = "user", content = "hi" } } }
      for k, v in pairs(extra) do
        r[k] = v
      end
      return r
    end
    raises_here("provider:complete: request must be a table, got string", p.complete, p, "hi")
    raises_here("provider:complete: request.tools[1].type must be \"function\", got web", p.complete, p,
      req { tools = { { type = "web", ["function"] = { name = "f" } } } })
    raises_here("provider:complete: request.messages[1].content must be a string or a list of parts, got number",
      p.complete, p, { messages = { { role = "user", content = 5 } } })
    raises_here("provider:complete: request.messages[2] must be a table with a string role", p.complete, p,
      { messages = { { role = "user", content = "hi" }, "hello" } })
    raises_here("provider:complete: give request.messages or request.prompt, not both", p.complete, p,
      req { prompt = "hi" })
    raises_here("provider:complete: request.stop must be a string or a list of strings", p.complete, p,
      req { stop = 5 })
  end)

  it("tool_loop: options and a request without messages or prompt", function()
    local p = lua_provider(function() return "x" end)
    raises_here("po.llm.tool_loop: options must be a table, got number", llm.tool_loop, p, HI, {}, 3)
    raises_here("po.llm.tool_loop: request.messages or request.prompt is required", llm.tool_loop, p, {}, {})
  end)

  it("prices, and the stream parsers' options", function()
    raises_here("po.llm.prices.set: model must be a string, got number", llm.prices.set, 5, { input = 1, output = 1 })
    raises_here("sse.new: options must be a table, got number", sse.new, function() end, 5)
  end)
end)

describe("a reply's tool calls, normalized", function()
  it("reads OpenAI's shape, with the arguments as text or as a table", function()
    local calls = assert(response.tool_calls {
      { id = "a", ["function"] = { name = "f", arguments = "{\"x\":1}" } },
      { id = "b", ["function"] = { name = "g", arguments = { y = 2 } } },
      { id = "c", name = "h", arguments = po.json.null },
      { name = "k", arguments_json = "  " },
    })
    assert.are.same({ id = "a", name = "f", arguments = { x = 1 }, arguments_json = "{\"x\":1}" }, calls[1])
    assert.are.same({ id = "b", name = "g", arguments = { y = 2 }, arguments_json = "{\"y\":2}" }, calls[2])
    assert.are.same({ id = "c", name = "h", arguments = {}, arguments_json = "{}" }, calls[3])
    assert.are.same({ id = "call_4", name = "k", arguments = {}, arguments_json = "{}" }, calls[4])
  end)

  it("refuses a call that is not an object, has no name, or arguments of another type, with EPROTO", function()
    assert.are.same({ nil, "bad reply: tool_calls[1] is string, not an object", "EPROTO" },
      { response.tool_calls { "f" } })
    assert.are.same({ nil, "bad reply: tool_calls[1] needs a string id and name", "EPROTO" },
      { response.tool_calls { { id = "a" } } })
    assert.are.same({ nil, "tool call 'f' (a): arguments are number, not an object", "EPROTO" },
      { response.tool_calls { { id = "a", name = "f", arguments = 5 } } })
    local long = "[" .. ("1,"):rep(40) .. "1]"
    assert.are.same({ nil, "tool call 'f' (a): arguments are not a JSON object: not an object: " .. long:sub(1, 60)
      .. "…", "EPROTO" }, { response.tool_calls { { id = "a", name = "f", arguments_json = long } } })
  end)
end)

describe("po.llm.tool_loop with a client of the caller's own", function()
  -- A client whose first answer asks for the calls given, as the client
  -- wrote them (not normalized), and whose second gives the tool results.
  local function client(calls)
    local seen = {}
    return {
      seen = seen,
      complete = function(_, req)
        seen[#seen + 1] = req
        if #seen == 1 then
          return { text = "", tool_calls = calls }
        end
        local out = {}
        for _, m in ipairs(req.messages) do
          if m.role == "tool" then
            out[#out + 1] = m.content
          end
        end
        return { text = table.concat(out, " | ") }
      end,
    }
  end

  it("decodes text arguments, gives none an empty object, tells the model of ones that do not decode", function()
    local c = client {
      { id = "1", name = "echo", arguments_json = "{\"v\":\"a\"}" },
      { id = "2", name = "echo" },
      { id = "3", name = "echo", arguments_json = "[1" },
      { id = "4", name = "nothing" },
    }
    local got = {}
    local res = assert(llm.tool_loop(c, { prompt = "go" }, {
      echo = function(args) got[#got + 1] = args; return args.v or "none" end,
      nothing = function() return nil end,
    }))
    assert.are.same({ { v = "a" }, {} }, got)
    local parts = {}
    for part in (res.text .. " | "):gmatch("(.-) | ") do
      parts[#parts + 1] = part
    end
    assert.are.equal("a", parts[1])
    assert.are.equal("none", parts[2])
    assert.matches("^error: the arguments of tool 'echo' are not a JSON object: ", parts[3])
    assert.are.equal("null", parts[4])
    local asked = c.seen[2].messages[2].tool_calls
    assert.are.same({ "{\"v\":\"a\"}", "{}" }, { asked[1].arguments_json, asked[2].arguments_json })
  end)
end)

describe("a lua provider's answer", function()
  it("of a type other than a table or a string is EPROTO", function()
    local p = lua_provider(function() return 42 end)
    local res, msg, code = p:complete(HI)
    assert.are.same({ nil, "lua: fn must return a response table or a string, got number", "EPROTO" },
      { res, msg, code })
  end)
end)
