--- The scheduler's timers (poengine.future): a binary min-heap on
--- (deadline, seq). A stopped timer is only marked; it leaves the heap when
--- it reaches the top, or when the heap is rebuilt. The earliest deadline
--- gives the reactor its timeout.
local core = require "poengine_core"

local now = core.now
local floor = math.floor

local M = {}

local heap, heap_len, timer_seq = {}, 0, 0

local function timer_before(a, b)
  if a.deadline ~= b.deadline then
    return a.deadline < b.deadline
  end
  return a.seq < b.seq
end

local function heap_push(t)
  heap_len = heap_len + 1
  local i = heap_len
  while i > 1 do
    local parent = floor(i / 2)
    if not timer_before(t, heap[parent]) then
      break
    end
    heap[i] = heap[parent]
    i = parent
  end
  heap[i] = t
end

local function heap_pop()
  local top = heap[1]
  local last = heap[heap_len]
  heap[heap_len] = nil
  heap_len = heap_len - 1
  if heap_len > 0 then
    local i = 1
    while true do
      local child = 2 * i
      if child > heap_len then
        break
      end
      if child < heap_len and timer_before(heap[child + 1], heap[child]) then
        child = child + 1
      end
      if not timer_before(heap[child], last) then
        break
      end
      heap[i] = heap[child]
      i = child
    end
    heap[i] = last
  end
  return top
end

local live_timers = 0

-- Stopped timers stay in the heap until they reach its top; when they are
-- most of it (a long timeout on a wait that finished early, many times
-- over), the heap is rebuilt without them so it cannot grow without bound.
local function compact_heap()
  local kept, n = {}, 0
  for i = 1, heap_len do
    local t = heap[i]
    if not t.stopped then
      n = n + 1
      kept[n] = t
    end
  end
  heap, heap_len = {}, 0
  for i = 1, n do
    heap_push(kept[i])
  end
end

local function start_timer(delay, fn)
  timer_seq = timer_seq + 1
  local t = { deadline = now() + delay, seq = timer_seq, fn = fn }
  heap_push(t)
  live_timers = live_timers + 1
  return t
end

local function stop_timer(t)
  if not t.stopped then
    t.stopped = true
    live_timers = live_timers - 1
    if heap_len > 64 and live_timers < heap_len / 4 then
      compact_heap()
    end
  end
end

-- Drops stopped timers from the top so the reactor's timeout is accurate.
local function next_deadline()
  while heap_len > 0 and heap[1].stopped do
    heap_pop()
  end
  return heap_len > 0 and heap[1].deadline or nil
end

-- Runs the timers that are due; returns how many ran.
local function run_due_timers()
  local limit = timer_seq -- timers started by these callbacks wait a turn
  local t_now = now()
  local ran = 0
  while heap_len > 0 do
    local t = heap[1]
    if t.stopped then
      heap_pop()
    elseif t.deadline <= t_now and t.seq <= limit then
      heap_pop()
      stop_timer(t)
      t.fn()
      ran = ran + 1
    else
      break
    end
  end
  return ran
end

--- Starts a timer that calls fn() once, delay seconds from now; returns it.
M.start = start_timer
--- Stops a timer (nothing happens for one already run or stopped).
M.stop = stop_timer
--- The earliest deadline of a live timer, or nil.
M.next_deadline = next_deadline
--- Runs the timers that are due; returns how many ran.
M.run_due = run_due_timers

--- Live timers and the heap's size (stopped ones included), for tests.
function M.counts()
  return live_timers, heap_len
end

return M
