--[[
  counters: status hash counters that a script call moves many times, written once at its end.
  Provides: count_later, flush_counts, counted. Needs: keys.

  A finished run's `active -1` and the next pick's `active +1` cancel out, and a dispatch step of
  n picks moves `pending` by -n: the hot path (finishMany-1.lua) made three HINCRBYs a target for
  what is one per campaign and call, or none. Only counters no script reads go through here
  (`active`, `pending`; `admitted` is read by the dispatch step): a reader outside the call sees
  the hash only after it, so deferring changes nothing it can see. A script that counts here
  runs its body through counted() (dispatch-1.lua, finishMany-1.lua), which writes the counts
  even when the body stops on an error: Redis keeps a script's writes up to an error, and their
  counts must stay with them. (On Redis 7 such an error's reply names the line of counted()'s
  re-raise, not the line that failed; a Lua runtime error's message still carries its own.)
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

-- Writes the counts deferred so far; `only`: just that field's.
local function flush_counts(only)
  for c, byField in pairs(counts_later) do
    for field, n in pairs(byField) do
      if n ~= 0 and (not only or field == only) then
        redis.call('HINCRBY', ck(c, 'status'), field, n)
        byField[field] = 0
      end
    end
  end
  if not only then counts_later = {} end
end

-- Runs fn(...) and writes the counts whatever comes of it; an error goes on to the caller after.
local function counted(fn, ...)
  local ok, out = pcall(fn, ...)
  flush_counts()
  if not ok then error(out, 0) end
  return out
end
