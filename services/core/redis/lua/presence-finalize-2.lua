--[[
  Decides a pending offline once its grace period is over. Runs on any pod or worker; only one
  caller ever gets the transition.
  KEYS[1] presence hash of (namespace, user)
  KEYS[2] presence view of (namespace, user) (see presence-connect-2.lua)
  ARGV[1] now (ms)
  Returns { code, version, lastSeen }: code 1 = became offline (announce it),
  2 = already offline, decided by a caller that may have died before announcing it (announce it
  again: the announce script publishes each version once), 0 = nothing to do (a socket is back, or
  offline and announced: drop from the due set), -1 = not due yet (keep it on the due set)
  The decided version stays in "unannounced" until the announcer settles it.
]]
local fields = redis.call('HKEYS', KEYS[1])
for _, f in ipairs(fields) do
  if string.sub(f, 1, 2) == 's:' then
    redis.call('HDEL', KEYS[1], 'pending')
    return { 0, 0, false }
  end
end
local view = redis.call('GET', KEYS[2])
if not view then return { 0, 0, false } end
local sep = string.find(view, ':', 1, true)
local status, lastSeen = string.sub(view, 1, sep - 1), string.sub(view, sep + 1)
if status ~= 'online' then
  local unannounced = redis.call('HGET', KEYS[1], 'unannounced')
  if unannounced then return { 2, tonumber(unannounced), lastSeen } end
  return { 0, 0, false }
end
local pending = tonumber(redis.call('HGET', KEYS[1], 'pending') or '0')
if pending > tonumber(ARGV[1]) then return { -1, 0, false } end
local v = redis.call('HINCRBY', KEYS[1], 'v', 1)
redis.call('SET', KEYS[2], 'offline:' .. lastSeen)
redis.call('HSET', KEYS[1], 'unannounced', v)
redis.call('HDEL', KEYS[1], 'pending')
return { 1, v, lastSeen }
