--[[
  An offline transition was announced: forget that it still had to be.
  KEYS[1] presence hash of (namespace, user)
  ARGV[1] the announced version
  Returns 1 when cleared (0 when a newer transition replaced it).
]]
if redis.call('HGET', KEYS[1], 'unannounced') == ARGV[1] then
  redis.call('HDEL', KEYS[1], 'unannounced')
  return 1
end
return 0
