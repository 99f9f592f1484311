--[[
  A barrier on a shard: answers, on a channel of the shard that the asking process subscribed to
  on its connection for the shard, the last id given out in the shard. Messages on one connection
  arrive in order, so when the answer arrives every entry of the shard up to that id that went
  to a channel the process is subscribed to has arrived before it: the process's position in the
  shard is at least that id.
  KEYS[1] the shard's sequence (room-publish-3.lua)
  ARGV[1] the process's barrier channel on the shard (same hash tag)
  ARGV[2] a token naming the request
  Returns the last id given out in the shard ("0-0" when none).
]]
local last = redis.call('GET', KEYS[1]) or '0-0'
redis.call('SPUBLISH', ARGV[1], ARGV[2] .. '\n' .. last)
return last
