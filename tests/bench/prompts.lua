--- Deterministic generator of realistic code-optimization prompts for the
--- semantic benchmarks: prompts filled from templates, near-duplicates of a
--- prompt (same meaning, other spelling) and look-alikes with another meaning.
--- Everything comes from one seeded generator: the same seed, the same sets.
local M = {}

local random = math.random

local function pick(list)
  return list[random(#list)]
end

local verbs = { "fetch", "parse", "encode", "decode", "render", "merge", "flush", "scan", "hash", "resize",
  "compact", "index", "load", "sort", "filter", "tokenize", "compress", "validate", "serialize", "dispatch" }
local nouns = { "header", "buffer", "request", "row", "token", "frame", "chunk", "record", "entry", "node",
  "page", "batch", "payload", "segment", "column", "packet", "block", "message", "session", "key" }
local dirs = { "src", "lib", "core", "engine", "net", "db", "util", "io" }
local exts = { "c", "cc", "py", "go", "rs", "ts", "java" }
local vars = { "len", "count", "limit", "offset", "size", "n", "i", "capacity", "depth", "total", "max_len",
  "head", "tail", "idx", "remaining" }
local ops = { ">", "<", ">=", "<=", "==", "!=" }

-- A code identifier in one of the styles people write: snake_case, camelCase,
-- a call, or in backticks.
local function identifier()
  local v, n = pick(verbs), pick(nouns)
  local style = random(4)
  if style == 1 then
    return v .. "_" .. n
  elseif style == 2 then
    return v .. n:sub(1, 1):upper() .. n:sub(2)
  elseif style == 3 then
    return v .. "_" .. n .. "()"
  end
  return "`" .. v .. "_" .. n .. "`"
end

local function path()
  return pick(dirs) .. "/" .. pick(nouns) .. "_" .. pick(verbs) .. "." .. pick(exts)
end

local function number()
  local kind = random(4)
  if kind == 1 then
    return tostring(2 ^ random(4, 16))
  elseif kind == 2 then
    return tostring(random(2, 99))
  elseif kind == 3 then
    return string.format("%d.%d", random(0, 9), random(1, 99))
  end
  return tostring(random(100, 50000))
end

local function condition()
  local a, b = pick(vars), pick(vars)
  while b == a do
    b = pick(vars)
  end
  return a .. " " .. pick(ops) .. " " .. b
end

-- Templates: a list of parts; strings are prose, tables are slots. A slot
-- { "fn" } etc. is filled once per prompt; { "neg", "not " } is a negation
-- that may be present or absent (the "different meaning" pairs flip it).
local templates = {
  { "Optimize the function ", { "fn" }, " in ", { "file" }, " so that it no longer copies the whole input. ",
    "Keep the public interface unchanged and make sure that all ", { "num" }, " existing tests still pass." },
  { "The loop in ", { "fn" }, " checks `", { "cond" }, "` on every iteration. Hoist that check out of the loop ",
    "and reuse the ", { "num" }, "-byte scratch buffer instead of allocating a new one each time." },
  { "Rewrite ", { "fn" }, " to use a hash table instead of a linear scan. The input usually holds about ",
    { "num" }, " entries and the function is called from ", { "fn2" }, " in a tight loop, so it should ",
    { "neg", "not " }, "allocate on the hot path." },
  { "Profile ", { "fn" }, " and find why it is slow when ", { "cond" }, ". Then propose a patch that keeps the ",
    "behaviour identical for all inputs, run the benchmark ", { "num" }, " times and report the median." },
  { "Reduce the memory used by ", { "fn" }, " in ", { "file" }, ": it currently copies the whole buffer before ",
    "parsing it. The returned pointer must ", { "neg", "not " }, "be null when the input is empty, and the ",
    "function should return early if ", { "cond" }, "." },
  { "Speed up ", { "fn" }, " for inputs larger than ", { "num" }, " bytes." },
  { "Vectorize the inner loop of ", { "fn" }, " in ", { "file" }, "; the loop exits when ", { "cond" }, "." },
  { "Please review ", { "fn" }, " and suggest a faster algorithm. It is called about ", { "num" },
    " times per request, and the results must ", { "neg", "not " }, "be cached between calls. Explain the ",
    "complexity of the current version and of the proposed one, and keep the error handling as it is." },
  { "In ", { "file" }, ", the function ", { "fn" }, " spends most of its time in string concatenation. ",
    "Replace it with a preallocated buffer of ", { "num" }, " bytes, grow it only when ", { "cond" },
    ", and do ", { "neg", "not " }, "change the output format. Add a benchmark that compares both versions." },
  { "Our service times out because ", { "fn" }, " holds a lock while it waits for I/O. Restructure it so the ",
    "lock is released before the call and taken again afterwards, with a timeout of ", { "num" },
    " seconds. The fix must be safe when ", { "cond" }, " and must ", { "neg", "not " }, "break the retry logic ",
    "in ", { "fn2" }, "." },
}

--- A prompt: returns its parts (strings, and for slots { kind, text }) so that
--- variants can change one slot; M.text(parts) joins them.
function M.prompt()
  local t = pick(templates)
  local fn, fn2 = identifier(), identifier()
  while fn2 == fn do
    fn2 = identifier()
  end
  local parts = {}
  for i, p in ipairs(t) do
    if type(p) == "string" then
      parts[i] = p
    else
      local kind, text = p[1], nil
      if kind == "fn" then
        text = fn
      elseif kind == "fn2" then
        text = fn2
      elseif kind == "file" then
        text = path()
      elseif kind == "num" then
        text = number()
      elseif kind == "cond" then
        text = condition()
      elseif kind == "neg" then
        text = random(2) == 1 and p[2] or ""
      end
      parts[i] = { kind, text, p[2] }
    end
  end
  return parts
end

function M.text(parts)
  local out = {}
  for i, p in ipairs(parts) do
    out[i] = type(p) == "string" and p or p[2]
  end
  return table.concat(out)
end

local function copy(parts)
  local c = {}
  for i, p in ipairs(parts) do
    c[i] = type(p) == "string" and p or { p[1], p[2], p[3] }
  end
  return c
end

-- the indices of the slots of one kind
local function slots(parts, kind)
  local found = {}
  for i, p in ipairs(parts) do
    if type(p) == "table" and p[1] == kind then
      found[#found + 1] = i
    end
  end
  return found
end

---------------------------------------------------------------------------
-- Near-duplicates: the same request, spelled differently.

local function words_of(s)
  local w = {}
  for word in s:gmatch("%S+") do
    w[#w + 1] = word
  end
  return w
end

local function respace(text)
  return (text:gsub(" ", function()
    local r = random(10)
    return r <= 6 and " " or r <= 8 and "  " or r == 9 and "\t" or "\n"
  end))
end

local function recase(text)
  local r = random(3)
  if r == 1 then
    return text:lower()
  elseif r == 2 then
    return text:upper()
  end
  -- capitalize a few words
  return (text:gsub("(%f[%w])(%l)", function(_, c)
    return random(4) == 1 and c:upper() or nil
  end))
end

-- Punctuation that carries no fact: sentence ends, commas, colons.
local function repunctuate(text)
  local r = random(4)
  if r == 1 then
    return (text:gsub("%.$", ""))
  elseif r == 2 then
    return (text:gsub("%. ", "; ", 1))
  elseif r == 3 then
    return (text:gsub(", ", " ", 1):gsub("%.$", "!"))
  end
  return (text:gsub("^(%w+) ", "%1, ", 1) .. "?")
end

-- One prose word replaced by a synonym (or a filler word added or dropped).
local synonyms = {
  Optimize = "Improve", Rewrite = "Refactor", Reduce = "Cut", Profile = "Measure",
  Vectorize = "Vectorise", Please = "Kindly", review = "inspect", suggest = "propose", keeps = "preserves",
  propose = "suggest", report = "give", find = "determine", usually = "typically", currently = "now",
  whole = "entire", Explain = "Describe", Replace = "Substitute", Restructure = "Rework", tight = "hot",
  identical = "unchanged", early = "immediately", reuse = "recycle", spends = "wastes", called = "invoked",
}

-- Replaces one word of text that is a key of words (chosen at random
-- among those present) by its value; nil when none is present.
local function replace_one(text, words)
  local candidates = {}
  for word, other in pairs(words) do
    if text:find("%f[%w]" .. word .. "%f[%W]") then
      candidates[#candidates + 1] = { word, other }
    end
  end
  if #candidates == 0 then
    return nil
  end
  table.sort(candidates, function(a, b)
    return a[1] < b[1]
  end)
  local c = pick(candidates)
  return (text:gsub("%f[%w]" .. c[1] .. "%f[%W]", c[2], 1))
end

local function edit_word(text)
  return replace_one(text, synonyms) or ("Please " .. text:sub(1, 1):lower() .. text:sub(2))
end

-- The same paragraph wrapped at another width.
local function reflow(text)
  local width, out, line = random(30, 72), {}, ""
  for _, w in ipairs(words_of(text)) do
    if #line > 0 and #line + 1 + #w > width then
      out[#out + 1] = line
      line = w
    else
      line = #line > 0 and (line .. " " .. w) or w
    end
  end
  out[#out + 1] = line
  return table.concat(out, "\n")
end

M.near = {
  whitespace = function(parts)
    return respace(M.text(parts))
  end,
  case = function(parts)
    return recase(M.text(parts))
  end,
  punctuation = function(parts)
    return repunctuate(M.text(parts))
  end,
  ["one-word edit"] = function(parts)
    return edit_word(M.text(parts))
  end,
  reflow = function(parts)
    return reflow(M.text(parts))
  end,
}

---------------------------------------------------------------------------
-- Different meaning: one fact changed.

local function other_number(s)
  local n = number()
  while n == s do
    n = number()
  end
  return n
end

local function swap_operands(cond)
  local a, op, b = cond:match("^(%S+) (%S+) (%S+)$")
  return b .. " " .. op .. " " .. a
end

-- Replaces one slot of the given kind by change(slot); nil when the prompt
-- has no such slot (the caller then draws another prompt).
local function change_slot(parts, kind, change)
  local at = slots(parts, kind)
  if #at == 0 then
    return nil
  end
  local c = copy(parts)
  local slot = c[pick(at)]
  slot[2] = change(slot)
  return M.text(c)
end

-- Each returns the changed prompt's text, or nil.
M.different = {
  ["changed number"] = function(parts)
    return change_slot(parts, "num", function(slot)
      return other_number(slot[2])
    end)
  end,
  negation = function(parts)
    return change_slot(parts, "neg", function(slot)
      return slot[2] == "" and slot[3] or ""
    end)
  end,
  ["swapped operands"] = function(parts)
    return change_slot(parts, "cond", function(slot)
      return swap_operands(slot[2])
    end)
  end,
  ["other function"] = function(parts)
    -- the same style of name, another verb
    return change_slot(parts, "fn", function(slot)
      local new = slot[2]
      while new == slot[2] do
        local v = pick(verbs)
        new = slot[2]:gsub("^(`?)(%l+)", function(tick)
          return tick .. v
        end, 1)
      end
      return new
    end)
  end,
}

---------------------------------------------------------------------------
-- A harder kind, outside the issue's list, for choosing the threshold: one
-- prose word changed so that the request means something else, with every
-- fact kept ("memory" for "latency", "mean" for "median"). The guards cannot
-- see these; only the score can.

local meaning_changes = {
  memory = "latency", copies = "validates", ["hash table"] = "sorted array", median = "mean",
  concatenation = "formatting", lock = "socket", slow = "wrong", benchmark = "fuzzer",
  behaviour = "logging", algorithm = "data layout", complexity = "correctness", output = "input",
  allocating = "logging", error = "retry", interface = "documentation", Vectorize = "Unroll",
  Profile = "Document", suggest = "forbid", inner = "outer", preallocated = "memory-mapped",
}

function M.prose_change(parts)
  return replace_one(M.text(parts), meaning_changes)
end

return M
