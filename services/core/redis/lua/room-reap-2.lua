--[[
  Removes a socket's membership that no pod will remove any more: the reaper does it for a dead
  pod's sockets, the sweeper for a parked membership whose grace period ended (room-park-1.lua).
  Like room-leave, plus a durable note of the user-left it owes, so that a caller killed before
  announcing it is finished by the next one.
  KEYS[1] room sockets hash (socket id -> "userId\npod"; "~left:<sid>" -> "userId\n<nonce>" while
          a user-left for that socket is owed; "~parked:<sid>" -> end of its grace period)
  KEYS[2] room users hash   (userId -> number of the user's sockets in the room)
  ARGV[1] socket id
  ARGV[2] pod name: the socket is removed only while recorded on that pod
  ARGV[3] "0": unconditionally (a dead pod); else the end of a grace period (ms): only while
          parked and not parked again since for longer (a socket that came back on the same pod
          is unparked and stays; one that came back and dropped again waits for its new deadline)
  ARGV[4] nonce of this removal: the user-left it owes is announced once per nonce (a socket id
          may come back, recovered, and leave again later: that is another user-left)
  Returns { code, distinct users left, user id or false, done, nonce or false }: code 1 = the
  user's last socket left now (announce user-left, then clear the note), 2 = it left earlier and
  user-left is still owed (announce it with the noted nonce, then clear the note), 0 = nothing to
  announce; done = 1 when the pod's index entry for this membership can go (removed now or
  before, or recorded on another pod now).
]]
local note = '~left:' .. ARGV[1]
local parked = '~parked:' .. ARGV[1]
local prev = redis.call('HGET', KEYS[1], ARGV[1])
if prev then
  local sep = string.find(prev, '\n', 1, true)
  local uid = string.sub(prev, 1, sep - 1)
  if string.sub(prev, sep + 1) ~= ARGV[2] then
    -- recovered on another pod meanwhile: whatever this pod owed for it is moot
    redis.call('HDEL', KEYS[1], note)
    return { 0, redis.call('HLEN', KEYS[2]), false, 1, false }
  end
  if ARGV[3] ~= '0' then
    local until_ = redis.call('HGET', KEYS[1], parked)
    if not until_ or tonumber(until_) > tonumber(ARGV[3]) then
      -- back on the same pod (recovered), or parked again until later: it stays for now
      return { 0, redis.call('HLEN', KEYS[2]), false, 0, false }
    end
  end
  redis.call('HDEL', KEYS[1], ARGV[1], parked)
  if redis.call('HINCRBY', KEYS[2], uid, -1) <= 0 then
    redis.call('HDEL', KEYS[2], uid)
    redis.call('HSET', KEYS[1], note, uid .. '\n' .. ARGV[4])
    return { 1, redis.call('HLEN', KEYS[2]), uid, 1, ARGV[4] }
  end
  return { 0, redis.call('HLEN', KEYS[2]), uid, 1, false }
end
local owed = redis.call('HGET', KEYS[1], note)
if owed then
  local sep = string.find(owed, '\n', 1, true)
  if not sep then return { 2, redis.call('HLEN', KEYS[2]), owed, 1, '' } end
  return { 2, redis.call('HLEN', KEYS[2]), string.sub(owed, 1, sep - 1), 1, string.sub(owed, sep + 1) }
end
return { 0, redis.call('HLEN', KEYS[2]), false, 1, false }
