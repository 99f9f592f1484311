--[[
  Appends a backend publish to the outbox, at most once per publish id within the window.
  KEYS[1] outbox stream
  KEYS[2] idempotency key of this publish id
  ARGV[1] idempotency window (ms)
  ARGV[2..] field, value pairs of the entry
  Returns { outbox entry id, 1 when appended now or 0 when the id was seen within the window }
]]
local prev = redis.call('GET', KEYS[2])
if prev then return { prev, 0 } end
local fields = {}
for i = 2, #ARGV do fields[#fields + 1] = ARGV[i] end
local id = redis.call('XADD', KEYS[1], '*', unpack(fields))
redis.call('SET', KEYS[2], id, 'PX', ARGV[1])
return { id, 1 }
