--- Prices of LLM calls, in US dollars per million tokens, per model.
---
--- These are EXAMPLES, copied from the vendors' public price pages as of
--- 2025-06; prices change, and discounts (batch, regional, negotiated) are
--- not modelled. Check them against your own bill before trusting a budget
--- or a cost figure, and correct or extend them from a script:
---
---   po.llm.prices.set("my-model", { input = 0.5, output = 1.5, cached = 0.05 })
---
--- Fields: `input` (uncached input), `output`, `cached` (cached input
--- reads; default `input`), `cache_write` (Anthropic cache creation;
--- default `input`). A model is found by its exact name, else by the longest
--- known name it starts with ("gpt-4o-mini-2024-07-18" uses "gpt-4o-mini").
--- Unknown models cost 0 (and `known` says so).
local M = {}

---@type table<string, { input: number, output: number, cached?: number, cache_write?: number }>
M.models = {
  -- OpenAI
  ["gpt-4o"] = { input = 2.50, output = 10.00, cached = 1.25 },
  ["gpt-4o-mini"] = { input = 0.15, output = 0.60, cached = 0.075 },
  ["gpt-4.1"] = { input = 2.00, output = 8.00, cached = 0.50 },
  ["gpt-4.1-mini"] = { input = 0.40, output = 1.60, cached = 0.10 },
  ["gpt-4.1-nano"] = { input = 0.10, output = 0.40, cached = 0.025 },
  ["o3"] = { input = 2.00, output = 8.00, cached = 0.50 },
  ["o4-mini"] = { input = 1.10, output = 4.40, cached = 0.275 },
  -- OpenAI embeddings (input only), from https://platform.openai.com/docs/pricing as of 2025-06
  ["text-embedding-3-small"] = { input = 0.02, output = 0 },
  ["text-embedding-3-large"] = { input = 0.13, output = 0 },
  ["text-embedding-ada-002"] = { input = 0.10, output = 0 },
  -- Anthropic
  ["claude-opus-4"] = { input = 15.00, output = 75.00, cached = 1.50, cache_write = 18.75 },
  ["claude-sonnet-4"] = { input = 3.00, output = 15.00, cached = 0.30, cache_write = 3.75 },
  ["claude-3-7-sonnet"] = { input = 3.00, output = 15.00, cached = 0.30, cache_write = 3.75 },
  ["claude-3-5-sonnet"] = { input = 3.00, output = 15.00, cached = 0.30, cache_write = 3.75 },
  ["claude-3-5-haiku"] = { input = 0.80, output = 4.00, cached = 0.08, cache_write = 1.00 },
  ["claude-3-haiku"] = { input = 0.25, output = 1.25, cached = 0.03, cache_write = 0.30 },
}

-- Lookups by name, found or not (false), so a call does not scan the
-- table; set() forgets them.
local memo = {}

--- Sets (or with nil, removes) the price of a model.
---@param model string
---@param price? { input: number, output: number, cached?: number, cache_write?: number }
function M.set(model, price)
  if type(model) ~= "string" then
    error("po.llm.prices.set: model must be a string, got " .. type(model), 2)
  end
  if price ~= nil then
    if type(price) ~= "table" or type(price.input) ~= "number" or type(price.output) ~= "number" then
      error("po.llm.prices.set: price must be a table with numbers input and output", 2)
    end
  end
  M.models[model] = price
  memo = {}
end

--- The price entry for a model, or nil.
function M.lookup(model)
  if type(model) ~= "string" then
    return nil
  end
  local p = M.models[model]
  if p then
    return p
  end
  local known = memo[model]
  if known ~= nil then
    return known or nil
  end
  local best, best_len = nil, 0
  for name, price in pairs(M.models) do
    if #name > best_len and model:sub(1, #name) == name then
      best, best_len = price, #name
    end
  end
  memo[model] = best or false
  return best
end

--- Cost in dollars of a call with the given usage; the second result says
--- whether the model's price was known. When `input_includes_cached` (the
--- OpenAI convention), cached reads are part of `usage.input`; otherwise
--- (Anthropic) they are counted apart.
---@return number cost, boolean known
function M.cost(model, usage, input_includes_cached)
  local p = M.lookup(model)
  if not p or not usage then
    return 0, p ~= nil
  end
  local cached = usage.cached_read or 0
  local fresh = usage.input or 0
  if input_includes_cached then
    fresh = fresh - cached
    if fresh < 0 then
      fresh = 0
    end
  end
  local cost = fresh * p.input + cached * (p.cached or p.input) + (usage.cache_write or 0) * (p.cache_write or p.input)
    + (usage.output or 0) * p.output
  return cost / 1e6, true
end

return M
