--- The optimizer's proposers: a candidate from an LLM reply (whole files
--- or a unified diff), from the task's own propose function, or a point of
--- a search space.
---
--- A candidate: { id =, files = { [path] = text } (changed target files) |
--- params = {...}, diff = text, malformed = reason, reply = text }.
local po = require "poengine"
local diff = require "poengine.optimizer.diff"
local prompts = require "poengine.optimizer.prompts"

local M = {}

local format, concat = string.format, table.concat

local function llm_request(self, state, i)
  local builder = self.task.prompts and self.task.prompts[self.task.method == "llm-diff" and "diff" or "rewrite"]
    or (self.task.method == "llm-diff" and prompts.diff or prompts.rewrite)
  local messages = builder(state, i)
  -- Each candidate of a cycle asks for a different answer (the note
  -- differs), so they are not one cached reply four times. No seed: not
  -- every vendor has one (Anthropic refuses it).
  messages[#messages].content = messages[#messages].content
    .. format("\n\n(Proposal %d of %d: try a different idea from the other proposals.)", i, state.n)
  return {
    model = self.task.model,
    messages = messages,
    temperature = self.task.temperature or 0.7,
    max_tokens = self.task.max_tokens or 4096,
    -- Never sent nor part of the cache key; a "lua" provider can read it.
    metadata = { task = self.task.id, cycle = state.cycle, candidate = i },
  }
end

-- kind: "diff" (the reply holds a unified diff) or "rewrite" (whole files).
local function candidate_from_reply(self, state, id, text, kind)
  local c = { id = id, reply = text }
  if kind == "diff" then
    local d, why = prompts.extract_diff(text)
    local patches = d and diff.parse(d)
    if not patches then
      c.malformed = why or select(2, diff.parse(d))
      return c
    end
    local ok, perr = diff.check_paths(patches, self.task.target_files)
    if not ok then
      c.malformed = "the diff was refused: " .. perr
      c.refused = true
      return c
    end
    c.files = {}
    for _, p in ipairs(patches) do
      local new, aerr = diff.apply(state.files[p.path], p)
      if new == nil then
        c.malformed = aerr
        return c
      end
      if new == false then
        c.malformed = p.path .. ": the diff deletes a target file"
        return c
      end
      c.files[p.path] = new
    end
  else
    local files, why = prompts.parse_rewrite(text, self.task.target_files)
    if not files then
      c.malformed = why
      return c
    end
    c.files = files
  end
  local parts = {}
  for _, path in ipairs(self.task.target_files) do
    if c.files[path] and c.files[path] ~= state.files[path] then
      parts[#parts + 1] = diff.unified(path, state.files[path] or "", c.files[path])
    end
  end
  c.diff = concat(parts)
  if c.diff == "" then
    c.malformed = "the reply changes nothing"
  end
  return c
end

--- The candidates of one cycle, state.n of them (fewer when a search
--- space runs out). self is the optimizer (its task, router and searcher);
--- state is what the cycle hands a propose function. Raises when the task's
--- propose function fails; marks self.budget_hit when the router's budget
--- refuses a call.
function M.propose(self, state)
  local n = state.n
  local method = self.task.method
  if method == "search" then
    local points = self.searcher:propose(n)
    local out = {}
    for i, p in ipairs(points) do
      out[i] = { id = format("c%d.%d", state.cycle, i), params = p, diff = "params " .. self.searcher:key(p) }
    end
    return out
  elseif type(method) == "function" then
    local ok, list = pcall(method, state)
    if not ok or type(list) ~= "table" then
      error("po.optimizer: the task's propose function failed: " .. tostring(list), 0)
    end
    local out = {}
    for i, c in ipairs(list) do
      local id = format("c%d.%d", state.cycle, i)
      if type(c) == "string" then
        out[i] = candidate_from_reply(self, state, id, c, "rewrite")
      elseif type(c) == "table" and (c.files or c.params or c.diff) then
        if c.diff and not c.files then
          out[i] = candidate_from_reply(self, state, id, c.diff, "diff")
        else
          out[i] = { id = id, files = c.files, params = c.params, diff = c.params and ("params " .. po.json.encode(c.params, { sort_keys = true })) or "" }
          if c.files then
            local parts = {}
            for _, path in ipairs(self.task.target_files) do
              if c.files[path] then
                parts[#parts + 1] = diff.unified(path, state.files[path] or "", c.files[path])
              end
            end
            out[i].diff = concat(parts)
            for path in pairs(c.files) do
              local ok2, why = diff.check_path(path, self.task.target_files)
              if not ok2 then
                out[i] = { id = id, malformed = "refused: " .. why, refused = true }
                break
              end
            end
          end
        end
      else
        out[i] = { id = id, malformed = "the propose function returned a " .. type(c) .. " candidate" }
      end
    end
    return out
  end
  -- llm-rewrite / llm-diff: n requests at once, through the router and its cache.
  local futures = {}
  for i = 1, n do
    futures[i] = self.router:complete_async(llm_request(self, state, i))
  end
  local out = {}
  for i, f in ipairs(futures) do
    local id = format("c%d.%d", state.cycle, i)
    local resp, err, code = f:wait()
    if resp then
      out[i] = candidate_from_reply(self, state, id, resp.text or "", method == "llm-diff" and "diff" or "rewrite")
      local usage = resp.usage or {}
      out[i].cost = { usd = resp.cost or 0, tokens = (usage.input or 0) + (usage.output or 0),
        cached = resp.cached or nil }
    else
      out[i] = { id = id, malformed = "the LLM call failed: " .. tostring(err), code = code, llm_failed = true,
        llm_error = tostring(err) }
      if code == "EBUDGET" then
        self.budget_hit = "usd"
      end
    end
    out[i].llm_call = true
  end
  return out
end

--- What the next cycle's prompt is told about a failed validation report:
--- each failing validator's errors (its summary: "1 failed, 0 errors") and
--- the part of its output that names what failed (the failing test's name
--- and its assertion message, prompts.failure_excerpt), within `limit`
--- bytes a validator (default 1400, under what prompts.evidence_text keeps).
function M.evidence_of(report, limit)
  limit = limit or 1400
  local parts = {}
  for _, r in ipairs(report.results or {}) do
    if not r.passed and r.status ~= "skipped" then
      local summary = concat(r.errors or {}, "\n")
      local output = concat({ r.stdout or "", r.stderr or "" }, r.stdout ~= "" and r.stderr ~= "" and "\n" or "")
      if output:find(summary, 1, true) then
        summary = "" -- the output already says it
      end
      local room = math.max(limit - #summary - 1, 200)
      local text = output ~= "" and prompts.failure_excerpt(output, room) or ""
      text = concat({ summary, text }, summary ~= "" and text ~= "" and "\n" or "")
      parts[#parts + 1] = r.name .. " (" .. r.status .. "):\n" .. prompts.truncate(text ~= "" and text or r.status, limit)
    end
  end
  return concat(parts, "\n\n")
end

--- How the LLM calls of a cycle went: nil when the method asks no LLM or
--- none failed, else { failed =, total =, error = the first failure's
--- message, code = its code, line = "2 of 4 LLM calls failed: ..." }.
function M.llm_failures(candidates)
  local failed, total, first
  for _, c in ipairs(candidates) do
    if c.llm_call then
      total = (total or 0) + 1
      if c.llm_failed then
        failed = (failed or 0) + 1
        first = first or c
      end
    end
  end
  if not failed then
    return nil
  end
  -- One line, and short: an error body can be a whole page.
  local message = tostring(first.llm_error):gsub("%s*\n%s*", " ")
  if #message > 300 then
    message = message:sub(1, 297) .. "..."
  end
  return { failed = failed, total = total, error = message, code = first.code,
    line = format("%d of %d LLM calls failed: %s", failed, total, message) }
end

-- A cycle none of whose LLM calls answered: nothing to validate or time.
-- It says so in one line and in the event log, and counts as a stalled
-- cycle. Before any call of the run has answered, it ends the run (a key,
-- an address or a network that fails every call now fails the next cycle's
-- too): po.optimizer.run then returns nil, the first error, its code.
function M.llm_failed_cycle(self, cy)
  local llm = cy.llm
  self:event { kind = "llm_failed", cycle = cy.k, failed = llm.failed, total = llm.total, error = llm.error,
    code = llm.code }
  self:fail_cycle(cy, llm.line)
  self:say("info", "cycle %d of %d: %s", cy.k, self.task.budget.cycles, llm.line)
  self.stall = self.stall + 1
  if not self.llm_answered and llm.code ~= "EBUDGET" then
    self.llm_unanswered = llm
    return nil, llm.line
  end
  return nil
end

return M
