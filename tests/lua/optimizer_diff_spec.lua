-- The optimizer's unified diffs: parsing, path checks, applying, producing.
local diff = require "poengine.optimizer.diff"

local original = table.concat({
  "local M = {}",
  "",
  "function M.sum(t)",
  "  local s = 0",
  "  for i = 1, #t do",
  "    s = s + t[i]",
  "  end",
  "  return s",
  "end",
  "",
  "return M",
}, "\n") .. "\n"

local model_diff = [[
Here is the change:

```diff
--- a/lib/sum.lua
+++ b/lib/sum.lua
@@ -4,5 +4,5 @@ function M.sum(t)
   local s = 0
-  for i = 1, #t do
-    s = s + t[i]
+  for _, v in ipairs(t) do
+    s = s + v
   end
   return s
```
]]

describe("diff.parse", function()
  it("reads files and hunks out of a model's reply, dropping a/ and b/", function()
    local patches = assert(diff.parse(model_diff))
    assert.are.equal(1, #patches)
    local p = patches[1]
    assert.are.equal("lib/sum.lua", p.path)
    assert.are.equal("lib/sum.lua", p.old_path)
    assert.are.equal(1, #p.hunks)
    local h = p.hunks[1]
    assert.are.same({ 4, 5, 4, 5 }, { h.old_start, h.old_count, h.new_start, h.new_count })
    assert.are.equal(7, #h.lines)
    assert.are.same({ op = "-", text = "  for i = 1, #t do" }, h.lines[2])
  end)

  it("rejects a hunk whose line counts do not match its header", function()
    local bad = "--- a/x\n+++ b/x\n@@ -1,3 +1,3 @@\n a\n-b\n+c\n"
    local p, err = diff.parse(bad)
    assert.is_nil(p)
    assert.matches("says %-3 %+3 lines but has %-2 %+2", err)
  end)

  it("rejects text with no diff in it, and headers without hunks", function()
    assert.is_nil(diff.parse("I improved the function, trust me."))
    local p, err = diff.parse("--- a/x\n+++ b/x\nno hunks here\n")
    assert.is_nil(p)
    assert.matches("no hunk", err)
  end)

  it("reads several files, created and deleted ones, and no-newline markers", function()
    local text = table.concat({
      "diff --git a/a.txt b/a.txt",
      "--- a/a.txt",
      "+++ b/a.txt",
      "@@ -1 +1 @@",
      "-old",
      "\\ No newline at end of file",
      "+new",
      "--- /dev/null",
      "+++ b/new.txt",
      "@@ -0,0 +1,2 @@",
      "+one",
      "+two",
    }, "\n")
    local patches = assert(diff.parse(text))
    assert.are.equal(2, #patches)
    assert.are.equal("a.txt", patches[1].path)
    assert.is_true(patches[1].hunks[1].lines[1].no_newline)
    assert.are.equal("/dev/null", patches[2].old_path)
    assert.are.equal("new.txt", patches[2].path)
  end)
end)

describe("diff.check_path", function()
  local allowed = { "lib/sum.lua", "src/main.c" }

  it("accepts target files, normalizing ./", function()
    assert.are.equal("lib/sum.lua", diff.check_path("./lib/sum.lua", allowed))
    assert.are.equal("src/main.c", diff.check_path("src//main.c", allowed))
  end)

  it("refuses absolute paths, .., paths outside the targets and odd names", function()
    local cases = {
      { "/etc/passwd", "absolute" },
      { "../outside.lua", "climbs out" },
      { "lib/../../x", "climbs out" },
      { "lib/other.lua", "not one of the target files" },
      { "", "empty" },
      { "C:\\x", "absolute" },
      { "a\0b", "NUL" },
      { "./", "names no file" },
    }
    for _, c in ipairs(cases) do
      local ok, why = diff.check_path(c[1], allowed)
      assert.is_nil(ok, c[1])
      assert.matches(c[2], why)
    end
  end)

  it("checks every path of a parsed diff", function()
    local patches = assert(diff.parse("--- a/lib/sum.lua\n+++ b/../evil.lua\n@@ -1 +1 @@\n-a\n+b\n"))
    local ok, why = diff.check_paths(patches, allowed)
    assert.is_nil(ok)
    assert.matches("climbs out", why)
    assert.is_true(diff.check_paths(assert(diff.parse(model_diff)), allowed))
  end)
end)

describe("diff.apply", function()
  it("applies a hunk where its header says", function()
    local p = assert(diff.parse(model_diff))[1]
    local out = assert(diff.apply(original, p))
    assert.matches("for _, v in ipairs%(t%) do\n    s = s %+ v\n", out)
    assert.not_matches("#t", out)
  end)

  it("finds a hunk at an offset when lines were added above it", function()
    local shifted = "-- a comment\n-- another\n" .. original
    local p = assert(diff.parse(model_diff))[1]
    local out = assert(diff.apply(shifted, p))
    assert.matches("^%-%- a comment\n%-%- another\nlocal M", out)
    assert.matches("ipairs", out)
  end)

  it("refuses a hunk whose context does not match", function()
    local changed = original:gsub("local s = 0", "local s = 1")
    local p = assert(diff.parse(model_diff))[1]
    local out, err = diff.apply(changed, p)
    assert.is_nil(out)
    assert.matches("hunk 1 does not match", err)
  end)

  it("creates and deletes files, and refuses to create one that exists", function()
    local create = assert(diff.parse("--- /dev/null\n+++ b/n.txt\n@@ -0,0 +1,2 @@\n+one\n+two\n"))[1]
    assert.are.equal("one\ntwo\n", diff.apply(nil, create))
    local out, err = diff.apply("x\n", create)
    assert.is_nil(out)
    assert.matches("already exists", err)
    local delete = assert(diff.parse("--- a/n.txt\n+++ /dev/null\n@@ -1,2 +0,0 @@\n-one\n-two\n"))[1]
    assert.is_false(diff.apply("one\ntwo\n", delete))
    out, err = diff.apply(nil, assert(diff.parse(model_diff))[1])
    assert.is_nil(out)
    assert.matches("no such file", err)
  end)

  it("keeps and changes the final newline as the diff says", function()
    local p = assert(diff.parse("--- a/a\n+++ b/a\n@@ -1 +1 @@\n-old\n\\ No newline at end of file\n+new\n"))[1]
    assert.are.equal("new\n", diff.apply("old", p))
    p = assert(diff.parse("--- a/a\n+++ b/a\n@@ -1 +1 @@\n-old\n+new\n\\ No newline at end of file\n"))[1]
    assert.are.equal("new", diff.apply("old\n", p))
  end)
end)

describe("diff.unified", function()
  it("writes a diff that applies back to the new text", function()
    local new = original:gsub("#t do", "#t, 1 do"):gsub("return s", "return s + 0")
    local text = diff.unified("lib/sum.lua", original, new)
    assert.matches("^%-%-%- a/lib/sum.lua\n%+%+%+ b/lib/sum.lua\n@@ ", text)
    local p = assert(diff.parse(text))[1]
    assert.are.equal(new, diff.apply(original, p))
  end)

  it("is empty for equal texts", function()
    assert.are.equal("", diff.unified("x", original, original))
  end)

  for _, opts in ipairs { {}, { max_cells = 0 } } do
  it("round-trips random edits, final newlines included" .. (opts.max_cells and ", without the LCS table" or ""), function()
    local seed = 12345
    local function rand(n)
      seed = (seed * 1103515245 + 12345) % 2147483648
      return seed % n + 1
    end
    local words = { "alpha", "beta", "gamma", "delta", "", "end", "local x = 1" }
    for _ = 1, 200 do
      local a, b = {}, {}
      for i = 1, rand(30) - 1 do
        a[i] = words[rand(#words)]
      end
      for i = 1, #a do
        local r = rand(10)
        if r == 1 then
          b[#b + 1] = words[rand(#words)]
        elseif r == 2 then
          b[#b + 1] = a[i]
          b[#b + 1] = words[rand(#words)]
        elseif r ~= 3 then
          b[#b + 1] = a[i]
        end
      end
      local at = table.concat(a, "\n") .. (rand(2) == 1 and #a > 0 and "\n" or "")
      local bt = table.concat(b, "\n") .. (rand(2) == 1 and #b > 0 and "\n" or "")
      local text = diff.unified("f", at, bt, rand(4) - 1, opts)
      if at == bt then
        assert.are.equal("", text)
      else
        local patches = assert(diff.parse(text))
        local out = diff.apply(at, patches[1])
        assert.are.equal(bt, out, "diff:\n" .. text)
      end
    end
  end)
  end

  it("writes a changed middle past max_cells as one removal and one addition", function()
    local a = "keep\none\ntwo\nthree\nkeep\n"
    local b = "keep\nthree\ntwo\none\nkeep\n"
    local text = diff.unified("f", a, b, 1, { max_cells = 8 })
    assert.are.equal("--- a/f\n+++ b/f\n@@ -1,5 +1,5 @@\n keep\n-one\n-two\n-three\n+three\n+two\n+one\n keep\n", text)
    assert.are.equal(b, diff.apply(a, assert(diff.parse(text))[1]))
    assert.has_error(function() diff.unified("f", a, b, 1, { max_cell = 1 }) end, "diff.unified: unknown option 'max_cell'")
  end)
end)

describe("diff limits", function()
  it("refuses a diff longer than max_bytes with ETOOBIG", function()
    local p, err, code = diff.parse(model_diff, { max_bytes = 100 })
    assert.is_nil(p)
    assert.are.equal("ETOOBIG", code)
    assert.are.equal("the diff is " .. #model_diff .. " bytes, more than max_bytes (100)", err)
    assert(diff.parse(model_diff, { max_bytes = #model_diff }))
    assert.has_error(function() diff.parse(model_diff, { max_bytes = "1" }) end,
      "diff.parse: max_bytes must be a non-negative number, got 1")
  end)

  it("summarizes a diff as its files and their line counts", function()
    local text = diff.unified("a.lua", "one\ntwo\nthree\n", "one\n2\nthree\nfour\n")
      .. diff.unified("src/b.c", "x\n", "")
    local summary, files = diff.summary(text)
    assert.are.equal("a.lua +2 -1, src/b.c +0 -1", summary)
    assert.are.same({ path = "a.lua", added = 2, removed = 1 }, files[1])
    assert.are.equal("", (diff.summary("")))
  end)
end)
