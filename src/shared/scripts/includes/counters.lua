--[[
  counters: status hash counters that a script call moves many times, written once at its end.
  Provides: count_later, flush_counts. Needs: keys.

  A finished run's `active -1` and the next pick's `active +1` cancel out, and a dispatch step of
  n picks moves `pending` by -n: the hot path (finishMany-1.lua) made three HINCRBYs a target for
  what is one per campaign and call, or none. Only counters no script reads go through here
  (`active`, `pending`; `admitted` is read by the dispatch step): a reader outside the call sees
  the hash only after it, so deferring changes nothing it can see. A script that counts here
  calls flush_counts() before it returns (dispatch-1.lua, finishMany-1.lua).
]]
-- @include "keys"

local counts_later = {}

-- Adds n to the campaign's status field at the end of the call. The campaign's status hash
-- exists (the caller has just read or written it), and nothing in a call deletes one.
local function count_later(c, field, n)
  local byField = counts_later[c]
  if not byField then
    byField = {}
    counts_later[c] = byField
  end
  byField[field] = (byField[field] or 0) + n
end

local function flush_counts()
  for c, byField in pairs(counts_later) do
    for field, n in pairs(byField) do
      if n ~= 0 then redis.call('HINCRBY', ck(c, 'status'), field, n) end
    end
  end
  counts_later = {}
end
