-- Tests for wordfreq.top; prints "N passed, N failed" and exits 1 on a failure.
-- Run from this directory: poengine test_wordfreq.lua
package.path = "./?.lua;" .. package.path
local wordfreq = require "wordfreq"

local passed, failed = 0, 0
local function check(name, got, want)
  local ok = #got == #want
  for i = 1, #want do
    ok = ok and got[i] and got[i].word == want[i][1] and got[i].count == want[i][2]
  end
  if ok then
    passed = passed + 1
  else
    failed = failed + 1
    local parts = {}
    for i, g in ipairs(got) do
      parts[i] = tostring(g.word) .. "=" .. tostring(g.count)
    end
    print("FAIL " .. name .. ": got {" .. table.concat(parts, ", ") .. "}")
  end
end

check("empty list", wordfreq.top({}, 3), {})
check("k larger than distinct", wordfreq.top({ "a", "b", "a" }, 5), { { "a", 2 }, { "b", 1 } })
check("k zero", wordfreq.top({ "a" }, 0), {})
check("ties alphabetical", wordfreq.top({ "pear", "fig", "apple", "fig", "pear", "apple" }, 3),
  { { "apple", 2 }, { "fig", 2 }, { "pear", 2 } })
check("most frequent first", wordfreq.top({ "x", "y", "y", "z", "z", "z" }, 2), { { "z", 3 }, { "y", 2 } })
check("case sensitive", wordfreq.top({ "A", "a", "a" }, 2), { { "a", 2 }, { "A", 1 } })
local many = {}
for i = 1, 500 do
  many[i] = "w" .. (i % 7)
end
check("larger input", wordfreq.top(many, 3), { { "w1", 72 }, { "w2", 72 }, { "w3", 72 } })
local input = { "b", "a", "b" }
wordfreq.top(input, 1)
check("input left unchanged", { { word = input[1], count = 1 }, { word = input[2], count = 1 }, { word = input[3], count = 1 } },
  { { "b", 1 }, { "a", 1 }, { "b", 1 } })

print(string.format("%d passed, %d failed", passed, failed))
os.exit(failed == 0 and 0 or 1)
