-- The optimizer's prompts and reply parsing.
local prompts = require "poengine.optimizer.prompts"

describe("prompts.truncate", function()
  it("keeps short text and cuts long text in the middle, saying how much", function()
    assert.are.equal("short", prompts.truncate("short", 100))
    local long = ("a"):rep(600) .. ("b"):rep(400) .. ("c"):rep(600)
    local t = prompts.truncate(long, 1000)
    assert.matches("^a+\n%[%.%.%. 600 bytes omitted %.%.%.%]\nc+$", t)
    assert.are.equal(600, #t:match("^a+"))
    assert.are.equal(400, #t:match("c+$"))
  end)
end)

describe("prompts.code_blocks", function()
  it("finds fenced blocks with their language, ignoring inline and unclosed fences", function()
    local reply = "Here:\n```c\nint x;\n```\nand ``` inline ``` stays prose\n````lua\nlocal s = '```'\n````\n```python\ncut off"
    local blocks = prompts.code_blocks(reply)
    assert.are.equal(2, #blocks)
    assert.are.same({ lang = "c", body = "int x;\n" }, blocks[1])
    assert.are.same({ lang = "lua", body = "local s = '```'\n" }, blocks[2])
  end)
end)

describe("prompts.parse_rewrite", function()
  it("takes the block in the target's language for one file", function()
    local reply = "Explanation first.\n```\nsome output\n```\n```c\nint fast(void) { return 1; }\n```\n"
    local files = assert(prompts.parse_rewrite(reply, { "src/slow.c" }))
    assert.are.equal("int fast(void) { return 1; }\n", files["src/slow.c"])
  end)

  it("maps several blocks to files by the path on their first line", function()
    local reply = "```c\n// src/a.c\nint a;\n```\n```c\n/* src/b.h */\nint b;\n```\n"
    local files = assert(prompts.parse_rewrite(reply, { "src/a.c", "src/b.h" }))
    assert.are.equal("// src/a.c\nint a;\n", files["src/a.c"])
    assert.are.equal("/* src/b.h */\nint b;\n", files["src/b.h"])
  end)

  it("reports a malformed reply with a reason the model can act on", function()
    local files, why = prompts.parse_rewrite("I would use a hash map here.", { "x.c" })
    assert.is_nil(files)
    assert.matches("no complete fenced code block", why)
    files, why = prompts.parse_rewrite("```c\nint x = 1;\n", { "x.c" })
    assert.is_nil(files)
    assert.matches("no complete fenced code block", why)
    files, why = prompts.parse_rewrite("", { "x.c" })
    assert.matches("empty", why)
  end)
end)

describe("prompts.extract_diff", function()
  it("prefers a diff block, else a bare diff, else fails", function()
    assert.are.equal("--- a/x\n+++ b/x\n", prompts.extract_diff("text\n```diff\n--- a/x\n+++ b/x\n```\n"))
    local bare = "--- a/x\n+++ b/x\n@@ -1 +1 @@\n-a\n+b\n"
    assert.are.equal(bare, prompts.extract_diff(bare))
    local d, why = prompts.extract_diff("no changes needed")
    assert.is_nil(d)
    assert.matches("no unified diff", why)
  end)
end)

describe("prompt templates", function()
  local state = {
    task = { description = "make sum faster", objective = { metric = "median time", direction = "min" } },
    target_files = { "lib/sum.lua" },
    files = { ["lib/sum.lua"] = "return function(t) end\n" },
    baseline_score = 0.25,
    evidence = { { label = "tests failed", text = ("E"):rep(5000) } },
  }

  it("give the code, the objective, the score and truncated evidence", function()
    local msgs = prompts.rewrite(state)
    assert.are.equal("system", msgs[1].role)
    local user = msgs[2].content
    assert.matches("Objective: median time %(lower is better%)", user)
    assert.matches("Task: make sum faster", user)
    assert.matches("Current score: 0.25", user)
    assert.matches("File `lib/sum.lua`:\n```lua\nreturn function%(t%) end\n```", user)
    assert.matches("### tests failed", user)
    assert.matches("bytes omitted", user)
    assert.is_true(#user < 4000)
    assert.matches("unified diff", prompts.diff(state)[2].content)
  end)

  it("use the task's own system prompt when it gives one", function()
    local s = { task = { prompts = { system = "Be terse." } }, target_files = { "a.c" }, files = { ["a.c"] = "" } }
    assert.are.equal("Be terse.", prompts.rewrite(s)[1].content)
  end)
end)
