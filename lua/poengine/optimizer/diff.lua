--- Unified diffs: parse what a model wrote, check its paths, apply it to text.
---
--- The parser is strict where a wrong guess would change code silently:
--- hunk line counts must match their headers, and context must match the
--- file exactly (a hunk may sit at an offset from where its header says, as
--- with patch(1), but never "fuzzily"). Paths are checked before anything
--- is applied: absolute paths, `..` and paths outside the allowed set are
--- refused. Writing the result goes through po.files.write with a root, which
--- also refuses symlinks that lead out of the sandbox.
local M = {}

local tonumber, concat, insert = tonumber, table.concat, table.insert

--- The limits: the largest diff parse reads (bytes), and the most cells of
--- the longest-common-subsequence table unified fills (the changed middle's
--- old lines times its new lines); past that, unified writes the middle as
--- one removal and one addition, still exact, only less minimal.
M.MAX_BYTES = 8 * 1024 * 1024
M.MAX_CELLS = 4 * 1000 * 1000

local function limit_option(fname, opts, name, default)
  if opts == nil then
    return default
  end
  if type(opts) ~= "table" then
    error(fname .. ": options must be a table, got " .. type(opts), 3)
  end
  for k in pairs(opts) do
    if k ~= name then
      error(fname .. ": unknown option '" .. tostring(k) .. "'", 3)
    end
  end
  local v = opts[name]
  if v ~= nil and (type(v) ~= "number" or not (v >= 0)) then
    error(fname .. ": " .. name .. " must be a non-negative number, got " .. tostring(v), 3)
  end
  return v or default
end

--- Splits text into lines (without their "\n"); also returns whether the
--- text ended with a newline.
---@param text string
---@return string[] lines
---@return boolean final_newline
function M.split_lines(text)
  local lines = {}
  if text == "" then
    return lines, true
  end
  local pos = 1
  local n = #text
  while pos <= n do
    local nl = text:find("\n", pos, true)
    if not nl then
      lines[#lines + 1] = text:sub(pos)
      return lines, false
    end
    lines[#lines + 1] = text:sub(pos, nl - 1)
    pos = nl + 1
  end
  return lines, true
end

local function join_lines(lines, final_newline)
  if #lines == 0 then
    return ""
  end
  return concat(lines, "\n") .. (final_newline and "\n" or "")
end

-- "a/src/x.c\t2024-01-01 ..." -> "a/src/x.c"
local function header_path(rest)
  local path = rest:match("^([^\t]*)")
  path = path:gsub("%s+$", "")
  if path:sub(1, 1) == '"' and path:sub(-1) == '"' then
    path = path:sub(2, -2)
  end
  return path
end

--- Parses a unified diff. Returns a list of file patches
--- `{ old_path =, new_path =, path =, hunks = { { old_start, old_count, new_start, new_count, lines = { { op, text } } } } }`
--- (`path` is the file it changes, with git's a/ and b/ prefixes removed;
--- `old_path` or `new_path` is "/dev/null" for a created or deleted file),
--- or nil, message when the diff is malformed, or nil, message, "ETOOBIG"
--- when it is longer than opts.max_bytes (default M.MAX_BYTES).
---@param text string
---@param opts? { max_bytes?: integer }
function M.parse(text, opts)
  if type(text) ~= "string" then
    error("diff.parse: text must be a string, got " .. type(text), 2)
  end
  local max_bytes = limit_option("diff.parse", opts, "max_bytes", M.MAX_BYTES)
  if #text > max_bytes then
    return nil, "the diff is " .. #text .. " bytes, more than max_bytes (" .. max_bytes .. ")", "ETOOBIG"
  end
  local lines = M.split_lines(text)
  local patches = {}
  local i = 1
  local n = #lines
  while i <= n do
    local line = lines[i]
    if line:sub(1, 4) == "--- " and i < n and lines[i + 1]:sub(1, 4) == "+++ " then
      local patch = {
        old_path = header_path(line:sub(5)),
        new_path = header_path(lines[i + 1]:sub(5)),
        hunks = {},
      }
      i = i + 2
      while i <= n and lines[i]:sub(1, 3) == "@@ " do
        local os, oc, ns, nc = lines[i]:match("^@@ %-(%d+),?(%d*) %+(%d+),?(%d*) @@")
        if not os then
          return nil, "malformed hunk header at line " .. i .. ": " .. lines[i]
        end
        local hunk = {
          old_start = tonumber(os),
          old_count = oc == "" and 1 or tonumber(oc),
          new_start = tonumber(ns),
          new_count = nc == "" and 1 or tonumber(nc),
          lines = {},
        }
        local header_line = i
        i = i + 1
        local old_seen, new_seen = 0, 0
        while i <= n and (old_seen < hunk.old_count or new_seen < hunk.new_count) do
          local l = lines[i]
          local op = l:sub(1, 1)
          if op == " " or op == "-" or op == "+" then
            hunk.lines[#hunk.lines + 1] = { op = op, text = l:sub(2) }
            if op ~= "+" then
              old_seen = old_seen + 1
            end
            if op ~= "-" then
              new_seen = new_seen + 1
            end
          elseif l == "" then
            -- Some writers drop the space of an empty context line.
            hunk.lines[#hunk.lines + 1] = { op = " ", text = "" }
            old_seen = old_seen + 1
            new_seen = new_seen + 1
          elseif l:sub(1, 1) == "\\" then
            if #hunk.lines > 0 then
              hunk.lines[#hunk.lines].no_newline = true
            end
          else
            break
          end
          i = i + 1
        end
        if i <= n and lines[i]:sub(1, 1) == "\\" and #hunk.lines > 0 then
          hunk.lines[#hunk.lines].no_newline = true
          i = i + 1
        end
        if old_seen ~= hunk.old_count or new_seen ~= hunk.new_count then
          return nil, string.format("hunk at line %d says -%d +%d lines but has -%d +%d",
            header_line, hunk.old_count, hunk.new_count, old_seen, new_seen)
        end
        patch.hunks[#patch.hunks + 1] = hunk
      end
      if #patch.hunks == 0 then
        return nil, "file header at line " .. (i - 2) .. " has no hunk"
      end
      local a, b = patch.old_path, patch.new_path
      if a:sub(1, 2) == "a/" and (b:sub(1, 2) == "b/" or b == "/dev/null") then
        a = a:sub(3)
      end
      if b:sub(1, 2) == "b/" and (patch.old_path:sub(1, 2) == "a/" or patch.old_path == "/dev/null") then
        b = b:sub(3)
      end
      patch.old_path, patch.new_path = a, b
      patch.path = b ~= "/dev/null" and b or a
      patches[#patches + 1] = patch
    else
      i = i + 1 -- prose, "diff --git", "index" lines: skipped
    end
  end
  if #patches == 0 then
    return nil, "no file changes found in the diff"
  end
  return patches
end

--- Checks a relative path: not empty, not absolute, no `..` or empty
--- component, no NUL, and (when `allowed` is given, a set or a list of
--- paths) one of the allowed paths. Returns the normalized path ("./" parts
--- removed) or nil, reason.
---@param path string
---@param allowed? table
function M.check_path(path, allowed)
  if type(path) ~= "string" or path == "" then
    return nil, "empty path"
  end
  if path:find("\0", 1, true) then
    return nil, "path contains a NUL byte"
  end
  if path:sub(1, 1) == "/" or path:match("^%a:[/\\]") then
    return nil, "absolute path " .. path
  end
  local parts = {}
  for part in (path .. "/"):gmatch("([^/]*)/") do
    if part == ".." then
      return nil, "path " .. path .. " climbs out with .."
    elseif part ~= "." and part ~= "" then
      parts[#parts + 1] = part
    end
  end
  if #parts == 0 then
    return nil, "path " .. path .. " names no file"
  end
  local norm = concat(parts, "/")
  if allowed then
    local ok = allowed[norm] == true
    if not ok then
      for _, p in ipairs(allowed) do
        if p == norm or p:gsub("^%./", "") == norm then
          ok = true
          break
        end
      end
    end
    if not ok then
      return nil, "path " .. norm .. " is not one of the target files"
    end
  end
  return norm
end

--- Checks every path a parsed diff touches. Returns true or nil, reason.
function M.check_paths(patches, allowed)
  for _, p in ipairs(patches) do
    for _, path in ipairs { p.old_path, p.new_path } do
      if path ~= "/dev/null" then
        local ok, why = M.check_path(path, allowed)
        if not ok then
          return nil, why
        end
      end
    end
  end
  return true
end

local function matches_at(lines, pos, want)
  if pos < 1 or pos + #want - 1 > #lines then
    return false
  end
  for k = 1, #want do
    if lines[pos + k - 1] ~= want[k] then
      return false
    end
  end
  return true
end

--- Applies one file patch to the file's text (nil for a file that does not
--- exist). Returns the new text (false when the patch deletes the file), or
--- nil, message when a hunk does not match.
---@param text string|nil
---@param patch table one element of M.parse's result
function M.apply(text, patch)
  if patch.old_path == "/dev/null" and text ~= nil then
    return nil, patch.path .. ": the diff creates a file that already exists"
  end
  if patch.old_path ~= "/dev/null" and text == nil then
    return nil, patch.path .. ": no such file"
  end
  local lines, final_newline = M.split_lines(text or "")
  local out = {}
  local cursor = 1 -- next line of the original not yet copied
  local delta = 0
  for h, hunk in ipairs(patch.hunks) do
    local old, new = {}, {}
    local new_ends_without_newline = false
    for _, l in ipairs(hunk.lines) do
      if l.op ~= "+" then
        old[#old + 1] = l.text
      end
      if l.op ~= "-" then
        new[#new + 1] = l.text
        new_ends_without_newline = l.no_newline == true
      end
    end
    local expected = (hunk.old_count == 0 and hunk.old_start + 1 or hunk.old_start) + delta
    local found
    if #old == 0 then
      found = math.max(expected, cursor)
      if found > #lines + 1 then
        return nil, string.format("%s: hunk %d adds lines after the end of the file", patch.path, h)
      end
    else
      -- The expected place first, then outward, never before the cursor.
      for off = 0, #lines do
        for _, pos in ipairs { expected - off, expected + off } do
          if pos >= cursor and matches_at(lines, pos, old) then
            found = pos
            break
          end
        end
        if found or (expected - off < cursor and expected + off > #lines) then
          break
        end
      end
      if not found then
        return nil, string.format("%s: hunk %d does not match the file (its context or removed lines differ)",
          patch.path, h)
      end
    end
    for k = cursor, found - 1 do
      out[#out + 1] = lines[k]
    end
    for _, l in ipairs(new) do
      out[#out + 1] = l
    end
    cursor = found + #old
    delta = delta + (found - expected)
    if cursor > #lines then
      final_newline = not new_ends_without_newline
    end
  end
  for k = cursor, #lines do
    out[#out + 1] = lines[k]
  end
  if patch.new_path == "/dev/null" then
    if #out > 0 then
      return nil, patch.path .. ": the diff deletes the file but leaves lines in it"
    end
    return false
  end
  return join_lines(out, final_newline)
end

--- Produces a unified diff of two texts for one path (for patch files and
--- the event log), with `context` lines around each change (default 3).
---@param path string
---@param a string old text
---@param b string new text
---@param context? integer
---@param opts? { max_cells?: integer } see M.MAX_CELLS
function M.unified(path, a, b, context, opts)
  context = context or 3
  local max_cells = limit_option("diff.unified", opts, "max_cells", M.MAX_CELLS)
  local x, xnl = M.split_lines(a)
  local y, ynl = M.split_lines(b)
  local n, m = #x, #y
  -- A last line without its newline differs from the same text with one:
  -- compare through keys that say so.
  local xk, yk = {}, {}
  for k = 1, n do
    xk[k] = x[k]
  end
  for k = 1, m do
    yk[k] = y[k]
  end
  if n > 0 and not xnl then
    xk[n] = xk[n] .. "\0"
  end
  if m > 0 and not ynl then
    yk[m] = yk[m] .. "\0"
  end
  -- The common head and tail need no search; a longest common subsequence
  -- over what is left in between (a candidate changes a few places).
  local head = 0
  while head < n and head < m and xk[head + 1] == yk[head + 1] do
    head = head + 1
  end
  local tail = 0
  while tail < n - head and tail < m - head and xk[n - tail] == yk[m - tail] do
    tail = tail + 1
  end
  -- Without the table (too big), the middle is removed and added whole.
  local lcs = (n - head - tail) * (m - head - tail) <= max_cells and {} or nil
  for i = n - tail + 1, head + 1, -1 do
    if not lcs then
      break
    end
    lcs[i] = {}
    for j = m - tail + 1, head + 1, -1 do
      if i > n - tail or j > m - tail then
        lcs[i][j] = 0
      elseif xk[i] == yk[j] then
        lcs[i][j] = lcs[i + 1][j + 1] + 1
      else
        local down, right = lcs[i + 1][j], lcs[i][j + 1]
        lcs[i][j] = down >= right and down or right
      end
    end
  end
  local ops = {}
  for k = 1, head do
    ops[#ops + 1] = { " ", x[k], k, k }
  end
  local i, j = head + 1, head + 1
  while i <= n - tail or j <= m - tail do
    if lcs and i <= n - tail and j <= m - tail and xk[i] == yk[j] then
      ops[#ops + 1] = { " ", x[i], i, j }
      i, j = i + 1, j + 1
    elseif i <= n - tail and (j > m - tail or not lcs or lcs[i + 1][j] >= lcs[i][j + 1]) then
      -- Removals before additions on a tie, as diff(1) writes them.
      ops[#ops + 1] = { "-", x[i], i, j }
      i = i + 1
    else
      ops[#ops + 1] = { "+", y[j], i, j }
      j = j + 1
    end
  end
  for k = 1, tail do
    ops[#ops + 1] = { " ", x[n - tail + k], n - tail + k, m - tail + k }
  end
  local out = {}
  local k = 1
  while k <= #ops do
    if ops[k][1] == " " then
      k = k + 1
    else
      local first = math.max(1, k - context)
      local last = k
      local run_end = k
      while run_end <= #ops do
        if ops[run_end][1] ~= " " then
          last = run_end
        elseif run_end - last > 2 * context then
          break
        end
        run_end = run_end + 1
      end
      last = math.min(#ops, last + context)
      local old_count, new_count = 0, 0
      local body = {}
      for t = first, last do
        local op = ops[t]
        body[#body + 1] = op[1] .. op[2]
        if op[1] ~= "+" then
          old_count = old_count + 1
        end
        if op[1] ~= "-" then
          new_count = new_count + 1
        end
        if op[1] ~= "+" and op[3] == n and not xnl then
          body[#body + 1] = "\\ No newline at end of file"
        elseif op[1] == "+" and op[4] == m and not ynl then
          body[#body + 1] = "\\ No newline at end of file"
        end
      end
      local old_start = old_count == 0 and ops[first][3] - 1 or ops[first][3]
      local new_start = new_count == 0 and ops[first][4] - 1 or ops[first][4]
      out[#out + 1] = string.format("@@ -%d,%d +%d,%d @@", old_start, old_count, new_start, new_count)
      for _, l in ipairs(body) do
        out[#out + 1] = l
      end
      k = last + 1
    end
  end
  if #out == 0 then
    return ""
  end
  insert(out, 1, "+++ b/" .. path)
  insert(out, 1, "--- a/" .. path)
  return concat(out, "\n") .. "\n"
end


--- The lines of a unified diff with what each is: "header" (outside a
--- hunk: "--- a/x", "+++ b/x", "diff ..."), "hunk" (an "@@" line),
--- "add", "del", "context" or "note" ("\\ No newline ..."). A hunk's header
--- counts its lines, so inside a hunk "--- text" is a removed "-- text",
--- not the next file's header. Returns a list of { line, kind }.
---@param text string
---@return table[]
function M.lines(text)
  local out = {}
  local old, new = 0, 0 -- lines left in the current hunk
  for line in ((text or "") .. "\n"):gmatch("([^\n]*)\n") do
    local first, kind = line:sub(1, 1), "header"
    if old > 0 or new > 0 then
      if first == "+" then
        kind, new = "add", new - 1
      elseif first == "-" then
        kind, old = "del", old - 1
      elseif first == "\\" then
        kind = "note"
      else
        kind, old, new = "context", old - 1, new - 1
      end
    elseif first == "@" then
      kind = "hunk"
      local b, d = line:match("^@@ %-%d+,?(%d*) %+%d+,?(%d*) @@")
      old, new = tonumber(b ~= "" and b or 1) or 0, tonumber(d ~= "" and d or 1) or 0
    end
    out[#out + 1] = { line, kind }
  end
  if out[#out][1] == "" and out[#out][2] == "header" then
    out[#out] = nil -- the end of the text, not a line
  end
  return out
end

--- What a unified diff changes, for a line a person reads: the files with
--- their added and removed line counts, "a.lua +12 -5, b.c +1 -0". Returns
--- the text and the list { { path =, added =, removed = } }.
---@param text string
---@return string summary
---@return table files
function M.summary(text)
  local files, current = {}, nil
  for _, l in ipairs(M.lines(text)) do
    local line, kind = l[1], l[2]
    local path = kind == "header" and line:match("^%+%+%+ (.+)$")
    if path then
      path = path:gsub("^b/", ""):gsub("\t.*$", "")
      current = { path = path, added = 0, removed = 0 }
      files[#files + 1] = current
    elseif current and kind == "add" then
      current.added = current.added + 1
    elseif current and kind == "del" then
      current.removed = current.removed + 1
    end
  end
  local parts = {}
  for i, f in ipairs(files) do
    parts[i] = string.format("%s +%d -%d", f.path, f.added, f.removed)
  end
  return table.concat(parts, ", "), files
end

return M
