--[[
  One-time upgrade step: before waiting queues per key (`<p>:sched:waiting:<key>`, turns taken
  round robin), a group waiting for a slot sat in a set `<p>:sched:blocked:<key>` that nothing
  reads any more. Each such group is made ready again; the next dispatch step re-checks its keys
  and, if a key is still full, queues it the new way. Run by every worker at start (idempotent:
  the set is gone after the first run).

  Input:
    KEYS[1] <prefix>:sched:ring (routing, as every scheduler script)
    ARGV[1] key prefix
    ARGV[2] the old set's key value (`<p>:sched:blocked:` .. ARGV[2])

  Output:
    number of groups made ready
]]
-- @include "groups"

local set = S .. 'blocked:' .. ARGV[2]
local woke = 0
for _, m in ipairs(redis.call('SMEMBERS', set)) do
  local sep = string.find(m, '|', 1, true)
  if sep then
    local c, gid = string.sub(m, 1, sep - 1), string.sub(m, sep + 1)
    if redis.call('HGET', ck(c, 'gstate'), gid) == 'b' then
      make_ready(c, gid)
      woke = woke + 1
    end
  end
end
redis.call('UNLINK', set)
return woke
