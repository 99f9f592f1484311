--[[
  Marks a silent pod as reaped, only if it is still silent, so that it cannot come back with
  stale sockets (its next heartbeat sees the mark) and a restarted reaper finishes the job.
  KEYS[1] pods hash: pod -> JSON { id, connections, lastHeartbeat[, reaped] }
  ARGV[1] pod name
  ARGV[2] cutoff (ms): heartbeats older than this are silent
  Returns the pod's last heartbeat (ms) when it is (now) marked reaped, or false when it is alive.
]]
local v = redis.call('HGET', KEYS[1], ARGV[1])
if not v then return false end
local info = cjson.decode(v)
if info.reaped then return tostring(info.lastHeartbeat) end
if tonumber(info.lastHeartbeat) >= tonumber(ARGV[2]) then return false end
info.reaped = true
redis.call('HSET', KEYS[1], ARGV[1], cjson.encode(info))
return tostring(info.lastHeartbeat)
