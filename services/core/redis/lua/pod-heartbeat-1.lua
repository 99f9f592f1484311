--[[
  A gateway pod's heartbeat.
  KEYS[1] pods hash: pod -> JSON { id, connections, lastHeartbeat[, reaped] }
  ARGV[1] pod name
  ARGV[2] JSON of this heartbeat
  ARGV[3] "1" when this pod has registered before (its entry should exist)
  Returns 1 when the pod was reaped meanwhile (entry gone or marked reaped): its sockets are
  stale for the rest of the cluster and must reconnect; 0 otherwise.
]]
local prev = redis.call('HGET', KEYS[1], ARGV[1])
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
if ARGV[3] == '1' and ((not prev) or string.find(prev, '"reaped":true', 1, true)) then return 1 end
return 0
