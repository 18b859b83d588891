--[[
  Stage a chunk of a producer's targets: each distinct target (by target key) goes to the end of
  its group's list; a repeated one is counted once and dropped. The set of keys seen lives in
  Redis while staging, so a producer's memory stays flat however many targets it reads; the
  commit (or a discard) deletes it.

  Input:
    KEYS[1] <prefix>:sched:ring, the routing key (includes/keys.lua)
    ARGV[1] key prefix
    ARGV[2] campaign id
    ARGV[3] staging deadline, ms (the producer is alive until then)
    ARGV[4..] target key, gid, target JSON, target key, gid, target JSON, ...

  Output:
    number of targets added (distinct, not seen before)
    ALREADY_COMMITTED  the campaign exists (another producer committed it after this one began
                       staging): nothing is added to its live lists
]]
-- @include "keys"

local c = ARGV[2]
if redis.call('EXISTS', ck(c, 'status')) == 1 then return CODES.ALREADY_COMMITTED end
local seen = ck(c, 'seen')
local added = 0
for i = 4, #ARGV, 3 do
  if redis.call('SADD', seen, ARGV[i]) == 1 then
    redis.call('RPUSH', ck(c, 'g:' .. ARGV[i + 1]), ARGV[i + 2])
    added = added + 1
  end
end
redis.call('ZADD', S .. 'staging', ARGV[3], c)
return added
