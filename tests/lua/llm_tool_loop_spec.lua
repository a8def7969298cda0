-- po.llm.tool_loop over a lua provider that behaves like a model calling
-- tools: it asks for the calls scripted for the conversation's user turn
-- and, once tool results end the conversation, answers with them. The
-- loop over the three vendors' wire formats is tested where the adapters
-- meet (the wire specs), since it needs their conversion of tool turns.
local po = require "poengine"

-- A model: calls(user_text, step) returns the tool calls to ask for (nil
-- or {} for a final answer); a conversation ending in tool results is
-- answered "final: " .. their contents joined by " | ". seen collects the
-- requests the model got.
local function model(calls, seen)
  local step = 0
  return po.llm.provider("lua", {
    model = "scripted",
    fn = function(req, emit)
      seen[#seen + 1] = req
      local results = {}
      for i = #req.messages, 1, -1 do
        local m = req.messages[i]
        if m.role ~= "tool" then
          break
        end
        table.insert(results, 1, m.content)
      end
      if #results > 0 and not (calls.always) then
        local text = "final: " .. table.concat(results, " | ")
        emit(text)
        return { text = text, finish_reason = "stop", usage = { input = 10, output = 2 }, cost = 0.5 }
      end
      step = step + 1
      local want = calls.fn(req.messages[1].content, step)
      if not want or #want == 0 then
        return { text = "no tools needed", usage = { input = 5, output = 3 }, cost = 0.25 }
      end
      return { text = "", tool_calls = want, finish_reason = "tool_calls", usage = { input = 7, output = 4 }, cost = 1 }
    end,
  })
end

local ADD = { name = "add", description = "adds", parameters = { type = "object",
  properties = { a = { type = "number" }, b = { type = "number" } } } }

describe("po.llm.tool_loop", function()
  it("runs call, tool, call and returns the final answer with the whole conversation", function()
    local seen, got = {}, {}
    local p = model({ fn = function()
      return { { id = "c1", name = "add", arguments_json = '{"a":1,"b":2}' } }
    end }, seen)
    local request = { system = "be exact", prompt = "add 1 and 2", tools = { ADD } }
    local res, err, code = po.llm.tool_loop(p, request, {
      add = function(args, call)
        got[#got + 1] = { args = args, call = call }
        return { sum = args.a + args.b }
      end,
    })
    assert.is_nil(err, code)
    assert.are.equal('final: {"sum":3}', res.text)
    assert.are.equal(2, res.steps)
    assert.are.equal(1.5, res.total_cost)
    assert.are.same({ input = 17, output = 6 }, res.total_usage)
    assert.are.same({ a = 1, b = 2 }, got[1].args)
    assert.are.equal("c1", got[1].call.id)
    assert.are.equal("add", got[1].call.name)
    local want_call = { id = "c1", name = "add", arguments = { a = 1, b = 2 }, arguments_json = '{"a":1,"b":2}' }
    assert.are.same({
      { role = "user", content = "add 1 and 2" },
      { role = "assistant", tool_calls = { want_call } },
      { role = "tool", tool_call_id = "c1", content = '{"sum":3}' },
      { role = "assistant", content = 'final: {"sum":3}' },
    }, res.messages)
    -- The second call carried the first turn's call and its result, and
    -- the request's other fields.
    assert.are.equal(2, #seen)
    assert.are.equal(3, #seen[2].messages)
    assert.are.same(want_call, seen[2].messages[2].tool_calls[1])
    assert.are.equal("be exact", seen[2].system)
    assert.are.same({ ADD }, seen[2].tools)
    assert.is_nil(request.messages) -- the caller's request is left as it was
  end)

  it("runs several calls of a turn in order, filling in ids and arguments_json", function()
    local seen, order = {}, {}
    local p = model({ fn = function()
      return { { name = "echo", arguments = { n = 1 } }, { name = "echo", arguments = { n = 2 } } }
    end }, seen)
    local res = assert(po.llm.tool_loop(p, { messages = { { role = "user", content = "go" } } }, {
      echo = function(args)
        order[#order + 1] = args.n
        return "n=" .. args.n -- a string goes back as it is
      end,
    }))
    assert.are.same({ 1, 2 }, order)
    assert.are.equal("final: n=1 | n=2", res.text)
    local turn = res.messages[2]
    -- Ids the model did not give are numbered by the provider over the
    -- conversation.
    assert.are.equal("call_1", turn.tool_calls[1].id)
    assert.are.equal("call_2", turn.tool_calls[2].id)
    assert.are.equal('{"n":2}', turn.tool_calls[2].arguments_json)
    assert.are.same({ role = "tool", tool_call_id = "call_2", content = "n=2" }, res.messages[4])
  end)

  it("ends with EPROTO, naming the call, when a reply's arguments are not JSON", function()
    local p = model({ fn = function()
      return { { id = "d", name = "soft", arguments_json = "{not json" } }
    end }, {})
    local ran = false
    local res, err, code = po.llm.tool_loop(p, { prompt = "try" }, { soft = function() ran = true end })
    assert.is_nil(res)
    assert.are.equal("EPROTO", code)
    assert.matches("tool call 'soft' %(d%): arguments are not a JSON object", err)
    assert.is_false(ran)
  end)

  it("tells the model about a missing handler, one that raises, fails or returns what JSON cannot hold, and goes on", function()
    local seen = {}
    local p = model({ fn = function()
      return {
        { id = "a", name = "nope", arguments = {} },
        { id = "b", name = "boom", arguments = {} },
        { id = "c", name = "soft", arguments = {} },
        { id = "e", name = "weird", arguments = {} },
      }
    end }, seen)
    local soft_calls = 0
    local res = assert(po.llm.tool_loop(p, { prompt = "try" }, {
      boom = function() error("kaput", 0) end,
      soft = function()
        soft_calls = soft_calls + 1
        return nil, "disk full", "EIO"
      end,
      weird = function() return { f = function() end } end,
    }))
    assert.are.equal(1, soft_calls)
    local contents = {}
    for i = 3, 6 do
      contents[#contents + 1] = res.messages[i].content
    end
    assert.are.equal("error: no handler for tool 'nope'", contents[1])
    assert.are.equal("error: tool 'boom' raised: kaput", contents[2])
    assert.are.equal("error: tool 'soft' failed: disk full", contents[3])
    assert.matches("^error: tool 'weird' returned a value JSON cannot hold: ", contents[4])
    assert.are.equal(2, res.steps)
  end)

  it("returns a reply without tool calls at once", function()
    local seen = {}
    local p = model({ fn = function() return nil end }, seen)
    local res = assert(po.llm.tool_loop(p, { prompt = "hi", tools = { ADD } }, {}))
    assert.are.equal("no tools needed", res.text)
    assert.are.equal(1, res.steps)
    assert.are.same({ { role = "user", content = "hi" }, { role = "assistant", content = "no tools needed" } },
      res.messages)
  end)

  it("gives up with ESTEPS after max_steps calls that all asked for tools", function()
    local seen, runs = {}, 0
    local p = model({ always = true, fn = function(_, step)
      return { { id = "s" .. step, name = "add", arguments = { a = step, b = 0 } } }
    end }, seen)
    local res, err, code, info = po.llm.tool_loop(p, { prompt = "loop" }, {
      add = function() runs = runs + 1 return 0 end,
    }, { max_steps = 3 })
    assert.is_nil(res)
    assert.are.equal("tool loop: 3 steps without a final answer", err)
    assert.are.equal("ESTEPS", code)
    assert.are.equal(3, #seen)
    assert.are.equal(2, runs) -- the last reply's tools are not run: nobody would read their results
    assert.are.equal(3, info.steps)
    assert.are.equal("s3", info.response.tool_calls[1].id)
    assert.are.equal(5, #info.messages)
  end)

  it("returns the client's error as it came", function()
    local p = po.llm.provider("lua", { model = "m", fn = function() return nil, "server on fire", "EHTTP", { status = 500 } end })
    local res, err, code, info = po.llm.tool_loop(p, { prompt = "x" }, {})
    assert.is_nil(res)
    assert.are.equal("server on fire", err)
    assert.are.equal("EHTTP", code)
    assert.are.equal(500, info.status)
  end)

  it("runs through a router inside a task, with handlers that wait, streaming each step", function()
    local seen = {}
    local p = model({ fn = function()
      return { { id = "w", name = "wait", arguments = { s = 0.01 } } }
    end }, seen)
    local r = po.llm.router { deployments = { { provider = p } }, retries = 0 }
    local tokens = {}
    local res = assert(po.async(function()
      return po.llm.tool_loop(r, { prompt = "wait a bit", stream = true }, {
        wait = function(args)
          po.sleep(args.s)
          return "waited"
        end,
      }, { call = { on_token = function(t) tokens[#tokens + 1] = t end } })
    end):wait(10))
    assert.are.equal("final: waited", res.text)
    assert.are.same({ "final: waited" }, tokens)
    assert.are.equal(2, r:stats().total_calls)
  end)

  it("raises on programmer errors, naming the argument", function()
    local p = model({ fn = function() end }, {})
    assert.has_error(function() po.llm.tool_loop({}, { prompt = "x" }, {}) end,
      "po.llm.tool_loop: client must have a :complete method (a router, a provider), got table")
    assert.has_error(function() po.llm.tool_loop(p, "x", {}) end, "po.llm.tool_loop: request must be a table, got string")
    assert.has_error(function() po.llm.tool_loop(p, { prompt = "x" }, nil) end,
      "po.llm.tool_loop: handlers must be a table of functions by tool name, got nil")
    assert.has_error(function() po.llm.tool_loop(p, { prompt = "x" }, {}, { max_step = 2 }) end,
      "po.llm.tool_loop: unknown option 'max_step'")
    assert.has_error(function() po.llm.tool_loop(p, { prompt = "x" }, {}, { max_steps = 0 }) end,
      "po.llm.tool_loop: max_steps must be a positive integer, got 0")
  end)
end)
