--[[
  Removes an entry from a due set (pending offlines, parked room memberships) once it is decided
  (and announced), unless it was rescheduled meanwhile (the score changed): that one must still
  be decided.
  KEYS[1] due set: score = deadline (ms)
  ARGV[1] member
  ARGV[2] the score it had when read
  Returns 1 when removed.
]]
if redis.call('ZSCORE', KEYS[1], ARGV[1]) == ARGV[2] then return redis.call('ZREM', KEYS[1], ARGV[1]) end
return 0
