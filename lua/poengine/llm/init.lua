--- po.llm: LLM providers, the router, record/replay cassettes and prices.
--- See docs/scripting.md, "LLM".
local M = {}

local provider = require "poengine.llm.provider"

--- po.llm.provider(kind, opts): one endpoint (see poengine.llm.provider).
M.provider = provider.new

--- The adapters by kind; a script may add one with the same fields.
M.adapters = provider.adapters

--- The price table (poengine.llm.prices).
M.prices = require "poengine.llm.prices"

--- po.llm.router{...}: deployments, retries, fallbacks, limits, budget, cache.
-- Not a tail call: router.new's errors count this frame to reach the
-- caller's line (a tail call would drop it and blame the caller's caller).
function M.router(opts)
  local router = require("poengine.llm.router").new(opts)
  return router
end

--- po.llm.tool_loop(client, request, handlers, opts): call → tools → call until a final answer.
M.tool_loop = require("poengine.llm.tool_loop").run

--- po.llm.embed(deployment, texts, opts) and po.llm.embedder(deployment, opts): embeddings.
M.embed = require("poengine.llm.embed").embed
M.embedder = require("poengine.llm.embed").embedder

--- po.llm.cassette{ path =, mode = }: record and replay around a router or provider.
function M.cassette(opts)
  local cassette, err, code = require("poengine.llm.cassette").new(opts) -- not a tail call: as for router
  return cassette, err, code
end

return M
