--[[
  Appends a message to a user's inbox, at most once per publish id.
  KEYS[1] inbox stream of (namespace, user)
  KEYS[2] de-duplication key for this publish id (ignored when ARGV[5] is "0")
  ARGV[1] JSON of the message (without id)
  ARGV[2] max length (exact trim: an approximate one keeps whole stream nodes, ~100 entries)
  ARGV[3] retention (ms): the stream and the key expire this long after the last write
  ARGV[4] de-duplication window (ms)
  ARGV[5] "1" when KEYS[2] is used
  Returns { stream id of the message, 1 when appended now or 0 when it was already there }
]]
if ARGV[5] == '1' then
  local prev = redis.call('GET', KEYS[2])
  if prev then return { prev, 0 } end
end
local id = redis.call('XADD', KEYS[1], 'MAXLEN', ARGV[2], '*', 'm', ARGV[1])
redis.call('PEXPIRE', KEYS[1], ARGV[3])
if ARGV[5] == '1' then redis.call('SET', KEYS[2], id, 'PX', ARGV[4]) end
return { id, 1 }
