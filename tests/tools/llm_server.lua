--- Test helper: starts tests/tools/llm_server.py on an ephemeral 127.0.0.1
--- port and talks to its admin endpoints.
---   local server = require("tests.tools.llm_server").start()
---   server.url            "http://127.0.0.1:PORT"
---   server:stats()        the server's counts (GET /admin/stats)
---   server:reset()        zeroes them
---   server:stop()         shuts it down and waits for it to exit
---   server:deployment(model, key, extra)   an OpenAI deployment pointing at it
---   server:router(deployments, defaults, extra)   po.llm.router over them
---
--- In a spec, one server for the file, its counts zeroed before each test:
---   local server = require("tests.tools.llm_server").for_spec(setup, teardown, before_each)
local po = require "poengine"

local M = {}
local Server = {}
Server.__index = Server

local function source_dir()
  return os.getenv("POENGINE_SOURCE_DIR") or "."
end

--- Starts a server; raises if it does not come up.
function M.start()
  local script = source_dir() .. "/tests/tools/llm_server.py"
  -- exec: the server's parent is this process, so it exits if we die.
  local pipe = assert(io.popen("exec python3 '" .. script .. "'", "r"))
  local port = pipe:read("*l")
  assert(port and port:match("^%d+$"), "llm_server.py did not print its port: " .. tostring(port))
  return setmetatable({ pipe = pipe, port = tonumber(port), url = "http://127.0.0.1:" .. port }, Server)
end

local function call(self, method, path)
  local res, err = assert(po.http.request { method = method, url = self.url .. path, body = method == "POST" and "" or nil }):wait(10)
  assert(res, err)
  assert(res.status == 200, path .. " answered " .. tostring(res.status))
  return po.json.decode(res.body)
end

function Server:stats()
  return call(self, "GET", "/admin/stats")
end

function Server:reset()
  call(self, "POST", "/admin/reset")
end

-- A copy of base with the fields of extra on top.
local function with(base, extra)
  for k, v in pairs(extra or {}) do
    base[k] = v
  end
  return base
end

--- An OpenAI-format deployment of this server for `model` (which may carry
--- the server's "#fault=..." options), with the given key, and extra
--- fields on top.
function Server:deployment(model, key, extra)
  return with({ provider = "openai", base_url = self.url .. "/v1", model = model, api_key = key }, extra)
end

--- po.llm.router over `deployments`, with `defaults` (the spec's usual
--- retries and backoff) and then `extra` on top.
function Server:router(deployments, defaults, extra)
  return po.llm.router(with(with({ deployments = deployments }, defaults), extra))
end

function Server:stop()
  if self.pipe then
    pcall(call, self, "POST", "/admin/shutdown")
    self.pipe:close()
    self.pipe = nil
  end
end

--- One server for a spec file: started in busted's `setup`, stopped in its
--- `teardown`, and, when `before_each` is given, reset before each test.
--- Busted's hooks are the spec's own, not globals a module can see, so
--- the spec hands them over. Returns the server, usable from `setup` on.
function M.for_spec(setup, teardown, before_each)
  local server = setmetatable({}, Server)
  setup(function()
    for k, v in pairs(M.start()) do
      server[k] = v
    end
  end)
  teardown(function()
    server:stop()
  end)
  if before_each then
    before_each(function()
      server:reset()
    end)
  end
  return server
end

return M
