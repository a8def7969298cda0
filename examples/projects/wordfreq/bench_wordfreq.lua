-- Benchmark for wordfreq.top: 30,000 words drawn from 2,000 distinct ones
-- (a fixed generator, so every run sees the same input); prints the seconds
-- the call took. Run from this directory: poengine bench_wordfreq.lua
package.path = "./?.lua;" .. package.path
local wordfreq = require "wordfreq"

local state = 12345
local function rand(n)
  state = state * 48271 % 2147483647
  return state % n + 1
end
local words = {}
for i = 1, 30000 do
  -- A skewed draw, as in real text: small ids far more often.
  words[i] = "word" .. math.min(rand(2000), rand(2000))
end

local clock = os.clock
local t0 = clock()
local top = wordfreq.top(words, 10)
local elapsed = clock() - t0
assert(#top == 10 and top[1].count >= top[10].count, "wrong result")
print(string.format("seconds %.6f", elapsed))
