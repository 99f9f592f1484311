--[[
  A socket's connection dropped and it may come back (recovered, with the same id, on any pod)
  within the grace period: its membership stays, marked parked, so that the room sees neither a
  user-left nor a user-joined for the blip. A re-join (the recovery) unparks it; otherwise a
  sweeper removes it once the grace period is over (room-reap-2.lua, parked only).
  KEYS[1] room sockets hash (socket id -> "userId\npod"; "~parked:<sid>" -> end of the grace
          period (ms) while parked)
  ARGV[1] socket id
  ARGV[2] pod name: only a membership recorded on that pod is parked
  ARGV[3] end of the grace period (ms); a later parking of the same socket (it came back and
          dropped again) extends it, so the sweep of the earlier one leaves it alone
  Returns 1 when parked, 0 when the socket is not a member there.
]]
local prev = redis.call('HGET', KEYS[1], ARGV[1])
if not prev or string.sub(prev, string.find(prev, '\n', 1, true) + 1) ~= ARGV[2] then return 0 end
local mark = '~parked:' .. ARGV[1]
local until_ = tonumber(redis.call('HGET', KEYS[1], mark) or '0')
if tonumber(ARGV[3]) > until_ then redis.call('HSET', KEYS[1], mark, ARGV[3]) end
return 1
