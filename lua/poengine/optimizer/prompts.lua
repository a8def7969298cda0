--- Prompts for the `llm-rewrite` and `llm-diff` proposers, and the parsing of
--- what the model answers.
---
--- A prompt gives the model the target code, the objective and the evidence
--- of the previous cycle (compiler errors, failing test output, benchmark
--- numbers, a reply that could not be used), each piece truncated so one
--- noisy log cannot crowd out the rest. Every template is a plain Lua
--- function of the proposer's state; a task overrides one by giving its own
--- (`task.prompts = { rewrite = fn, diff = fn, system = "..." }`).
local M = {}

local concat, format = table.concat, string.format

-- Joins the non-empty parts (some may be nil) with blank lines between.
local function paragraphs(...)
  local out = {}
  for i = 1, select("#", ...) do
    local p = select(i, ...)
    if p and p ~= "" then
      out[#out + 1] = p
    end
  end
  return concat(out, "\n\n")
end

--- Keeps the head and the tail of long text (the start of a compiler log
--- names the first error, its end the summary), marking what was cut.
---@param text string
---@param limit? integer bytes, default 2000
function M.truncate(text, limit)
  text = tostring(text or "")
  limit = limit or 2000
  if #text <= limit then
    return text
  end
  local head = math.floor(limit * 0.6)
  local tail = limit - head
  return text:sub(1, head) .. format("\n[... %d bytes omitted ...]\n", #text - head - tail) .. text:sub(-tail)
end

-- Lines that mark where a test run's failure is told: a failing test's
-- name, an assertion, an error with its place.
local FAILURE_MARKS = {
  "FAIL", "[Ff]ail", "not ok", "[Aa]ssert", "[Ee]rror", "[Ee]xpected", "panic", "Traceback", "%.%a+:%d+:",
}

local function failure_line(line)
  for _, mark in ipairs(FAILURE_MARKS) do
    if line:find(mark) then
      return true
    end
  end
  return false
end

--- The part of a test run's output that names what failed: from a couple
--- of lines before the first line that reads like a failure (a failing
--- test's name, an assertion, an error), as much as fits, and the last
--- lines (the summary) when there is room. Output with no such line is
--- cut as M.truncate cuts it.
---@param text string
---@param limit? integer bytes, default 1200
function M.failure_excerpt(text, limit)
  text = tostring(text or "")
  limit = limit or 1200
  if #text <= limit then
    return text
  end
  local lines = {}
  for line in (text .. "\n"):gmatch("([^\n]*)\n") do
    lines[#lines + 1] = line
  end
  local first
  for i, line in ipairs(lines) do
    if failure_line(line) then
      first = i
      break
    end
  end
  if not first then
    return M.truncate(text, limit)
  end
  local from = math.max(1, first - 2)
  local tail_room = math.floor(limit * 0.25)
  local start = 1
  for j = 1, from - 1 do
    start = start + #lines[j] + 1
  end
  local before = from > 1 and format("[... %d lines before ...]\n", from - 1) or ""
  local rest = text:sub(start)
  if #rest <= limit then
    return before .. rest
  end
  local head = rest:sub(1, limit - tail_room)
  return before .. head .. format("\n[... %d bytes omitted ...]\n", #rest - #head - tail_room)
    .. text:sub(-tail_room)
end

local function language_of(path)
  local ext = path:match("%.([%w]+)$") or ""
  local names = {
    c = "c", h = "c", cc = "cpp", cpp = "cpp", hpp = "cpp", lua = "lua", py = "python",
    js = "javascript", ts = "typescript", go = "go", rs = "rust", java = "java", sh = "sh",
  }
  return names[ext:lower()] or ext:lower()
end
M.language_of = language_of

M.system = "You are an expert performance engineer. You make code faster without changing what it does: "
  .. "every existing test must still pass and the program's output must stay the same."

local function objective_text(task)
  local o = task.objective or {}
  local what = o.metric or "the benchmark's time"
  local dir = o.direction == "max" and "higher" or "lower"
  return format("Objective: %s (%s is better).", type(what) == "string" and what or "the benchmark score", dir)
    .. (task.description and ("\nTask: " .. task.description) or "")
end

--- The evidence section: what happened to the previous cycle's candidates
--- and the current best, each piece truncated.
---@param evidence table|nil list of { label =, text = }
function M.evidence_text(evidence, limit)
  if not evidence or #evidence == 0 then
    return ""
  end
  local parts = { "Evidence from the previous cycle:" }
  for _, e in ipairs(evidence) do
    parts[#parts + 1] = "### " .. e.label .. "\n" .. M.truncate(e.text, limit or 1500)
  end
  return concat(parts, "\n\n")
end

local function files_text(state)
  local parts = {}
  for _, path in ipairs(state.target_files) do
    parts[#parts + 1] = format("File `%s`:\n```%s\n%s\n```", path, language_of(path),
      (state.files[path] or ""):gsub("\n$", ""))
  end
  return concat(parts, "\n\n")
end

--- Messages asking for whole files back.
---@param state table { task =, target_files =, files =, evidence =, baseline_score =, cycle = }
function M.rewrite(state)
  local task = state.task
  local user = paragraphs(
    objective_text(task),
    state.baseline_score and format("Current score: %s.", tostring(state.baseline_score)),
    files_text(state),
    M.evidence_text(state.evidence),
    #state.target_files == 1
        and "Reply with the complete new version of the file in one fenced code block, and nothing else after it."
      or "Reply with the complete new version of each file you change, each in its own fenced code block whose first line is a comment naming the file's path."
  )
  return {
    { role = "system", content = (task.prompts and task.prompts.system) or M.system },
    { role = "user", content = user },
  }
end

--- Messages asking for a unified diff.
function M.diff(state)
  local task = state.task
  local user = paragraphs(
    objective_text(task),
    state.baseline_score and format("Current score: %s.", tostring(state.baseline_score)),
    files_text(state),
    M.evidence_text(state.evidence),
    "Reply with a unified diff (--- a/path, +++ b/path, @@ hunks with exact context) in one ```diff fenced block. "
      .. "Change only the files shown."
  )
  return {
    { role = "system", content = (task.prompts and task.prompts.system) or M.system },
    { role = "user", content = user },
  }
end

--- The fenced code blocks of a reply, in order: { lang =, body = }. A fence
--- opens at the start of a line (``` or longer, with an optional info
--- string) and closes with a line of the same fence; an unclosed block (a
--- reply cut off by max_tokens) is not a block.
---@param reply string
function M.code_blocks(reply)
  local text = "\n" .. reply .. "\n"
  local blocks = {}
  local pos = 1
  while true do
    local _, e, fence, info = text:find("\n[ \t]*(```+)([^\n`]*)\n", pos)
    if not e then
      break
    end
    local close_s, close_e = text:find("\n[ \t]*" .. fence .. "[ \t]*\n", e)
    if not close_s then
      break
    end
    blocks[#blocks + 1] = { lang = (info:match("^%s*(%S*)") or ""):lower(), body = text:sub(e + 1, close_s) }
    pos = close_e - 1
  end
  return blocks
end

--- Reads whole files out of a `rewrite` reply. Returns { [path] = text } or
--- nil, reason (the reason is fed back to the model next cycle).
---@param reply string
---@param target_files string[]
function M.parse_rewrite(reply, target_files)
  if type(reply) ~= "string" or reply:match("^%s*$") then
    return nil, "the reply was empty"
  end
  local blocks = M.code_blocks(reply)
  if #blocks == 0 then
    return nil, "the reply has no complete fenced code block"
  end
  local files = {}
  if #target_files == 1 then
    local path = target_files[1]
    local lang = language_of(path)
    local pick
    for _, b in ipairs(blocks) do
      if b.lang == lang or b.lang == "" or b.lang == path:match("[^/]*$") then
        if not pick or #b.body > #pick.body then
          pick = b
        end
      end
    end
    pick = pick or blocks[#blocks]
    files[path] = pick.body
    return files
  end
  for _, b in ipairs(blocks) do
    local first = b.body:match("^[^\n]*")
    for _, path in ipairs(target_files) do
      if first:find(path, 1, true) then
        files[path] = b.body
      end
    end
  end
  if next(files) == nil then
    return nil, "no code block names one of the target files on its first line"
  end
  return files
end

--- Reads a unified diff out of a `diff` reply: the first ```diff or
--- ```patch block, else the whole reply. Returns the diff text or nil, reason.
function M.extract_diff(reply)
  if type(reply) ~= "string" or reply:match("^%s*$") then
    return nil, "the reply was empty"
  end
  for _, b in ipairs(M.code_blocks(reply)) do
    if b.lang == "diff" or b.lang == "patch" or b.body:match("^%-%-%- ") then
      return b.body
    end
  end
  if reply:find("\n@@ ", 1, true) or reply:match("^%-%-%- ") then
    return reply
  end
  return nil, "the reply has no unified diff"
end

return M
