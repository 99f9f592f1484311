--[[
  Removes a user from the due set once their pending offline is decided (and announced), unless a
  newer disconnect rescheduled it meanwhile (the score changed): that one must still be decided.
  KEYS[1] due set: member "nsp\nuserId", score = deadline (ms)
  ARGV[1] member
  ARGV[2] the score it had when read
  Returns 1 when removed.
]]
if redis.call('ZSCORE', KEYS[1], ARGV[1]) == ARGV[2] then return redis.call('ZREM', KEYS[1], ARGV[1]) end
return 0
