-- wordfreq: the most frequent words of a list.
--
-- This is the deliberately slow starting point of examples/quickstart.lua:
-- it counts each distinct word by scanning the whole list again (quadratic)
-- and sorts by repeated selection. The tests in test_wordfreq.lua say what
-- must stay true; bench_wordfreq.lua measures it.
local M = {}

--- The k most frequent words of `words`, most frequent first; words with the
--- same count in alphabetical order. Returns a list of { word =, count = }.
function M.top(words, k)
  local distinct = {}
  for i = 1, #words do
    local w = words[i]
    local known = false
    for j = 1, #distinct do
      if distinct[j].word == w then
        known = true
        break
      end
    end
    if not known then
      local count = 0
      for j = 1, #words do
        if words[j] == w then
          count = count + 1
        end
      end
      distinct[#distinct + 1] = { word = w, count = count }
    end
  end
  local result = {}
  for _ = 1, math.min(k, #distinct) do
    local best
    for j = 1, #distinct do
      local d = distinct[j]
      if not d.taken and (not best or d.count > best.count or (d.count == best.count and d.word < best.word)) then
        best = d
      end
    end
    best.taken = true
    result[#result + 1] = { word = best.word, count = best.count }
  end
  return result
end

return M
