--[[
  Copy outcome records into a campaign's records hash, which lives in the campaign's own hash
  tag slot (on a Redis Cluster, a different node from the scheduler's). Each record carries the
  seq its marker was given; a record replaces what is stored only when its seq is higher, so a
  copy that arrives late (a slow worker, a sweep racing the worker) never brings back an older
  record of a target that was retried and recorded again. Copying twice is harmless.
  Input:
    KEYS[1] <bare prefix>:campaign:{<id>}:records   target key -> '<seq>|<record JSON>'
    ARGV[1..] target key, '<seq>|<record JSON>', ...
  Output:
    n    records written (those already stored with the same or a newer seq are left)
]]
local key = KEYS[1]
local n = 0
for i = 1, #ARGV, 2 do
  local field, value = ARGV[i], ARGV[i + 1]
  -- Usually the target has no record here yet: one command.
  if redis.call('HSETNX', key, field, value) == 1 then
    n = n + 1
  else
    local seq = tonumber(string.match(value, '^(%d+)|'))
    if tonumber(string.match(redis.call('HGET', key, field), '^(%d+)|')) < seq then
      redis.call('HSET', key, field, value)
      n = n + 1
    end
  end
end
return n
