--[[
  Moves an outbox entry that failed too often to the dead-letter stream, atomically.
  KEYS[1] outbox stream
  KEYS[2] dead-letter stream
  ARGV[1] consumer group
  ARGV[2] entry id
  ARGV[3] attempts
  ARGV[4] last error
  Returns the dead-letter entry id, or false when the entry was already gone (acknowledged).
]]
local e = redis.call('XRANGE', KEYS[1], ARGV[2], ARGV[2])
if #e == 0 then
  redis.call('XACK', KEYS[1], ARGV[1], ARGV[2])
  return false
end
local fields = e[1][2]
fields[#fields + 1] = 'outboxId'
fields[#fields + 1] = ARGV[2]
fields[#fields + 1] = 'attempts'
fields[#fields + 1] = ARGV[3]
fields[#fields + 1] = 'error'
fields[#fields + 1] = ARGV[4]
local id = redis.call('XADD', KEYS[2], 'MAXLEN', '~', '100000', '*', unpack(fields))
redis.call('XACK', KEYS[1], ARGV[1], ARGV[2])
redis.call('XDEL', KEYS[1], ARGV[2])
return id
