--[[
  Pick the next runnable targets, round robin over campaigns and, within a campaign, over its
  groups (a group = the targets that share the same limit key values). A picked target takes a
  leased slot on every one of its keys and advances the rate clock of each rated key, all in
  this one step, so no two workers can both take the last slot. A group whose key is full waits
  in that key's queue (it costs nothing until a slot frees); a group over a rate window (its
  next start is not due yet) or behind a Retry-After pause goes to `delayed`. The step itself
  lives in includes/dispatch.lua: finishMany-1.lua runs it too. Before picking, expired leases are
  reclaimed (their targets go back to the head of their group) and due retries and delays are
  woken.

  Keys are derived from ARGV[1] (see includes/keys.lua).

  Input:
    KEYS[1] <prefix>:sched:ring, the routing key (includes/keys.lua)
    ARGV[1] key prefix
    ARGV[2] scheduler caps (includes/caps.lua)
    ARGV[3] most targets to pick
    ARGV[4] lease, ms

  Output:
    { now, nextWakeMs, reclaimed, holder1, entry1, holder2, entry2, ... }
    nextWakeMs: the earliest lease expiry, retry or delay still ahead (-1 when none): a worker
    sets a timer for it, so nothing waits on polling; now when the step spent all its looks
    without filling its picks and ready groups remain. No code from the table.
    reclaimed: a count, or '<count>\n<campaign>\t<zone>\n...' when maintenance-window zones
    need their next interval computed (includes/windows.lua): the worker stores them
    (setWindows-1.lua) and dispatches again.
]]
-- @include "dispatch"

return counted(dispatch_step, tonumber(ARGV[3]), tonumber(ARGV[4]), now_ms(), true)
