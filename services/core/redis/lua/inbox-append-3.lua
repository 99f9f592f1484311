--[[
  Appends a message to a user's inbox, at most once per publish id, keeping the inbox within its
  count and byte caps (the oldest messages go first; the newest always stays).
  KEYS[1] inbox stream of (namespace, user); entries: m = JSON of the message, n = its size
  KEYS[2] de-duplication key for this publish id (ignored when ARGV[5] is "0")
  KEYS[3] the inbox's byte count (same hash tag)
  ARGV[1] JSON of the message (without id)
  ARGV[2] max length (messages)
  ARGV[3] retention (ms): the stream and its keys expire this long after the last write
  ARGV[4] de-duplication window (ms)
  ARGV[5] "1" when KEYS[2] is used
  ARGV[6] max bytes (sum of the messages' JSON)
  Returns { stream id of the message, 1 when appended now or 0 when it was already there }
]]
if ARGV[5] == '1' then
  local prev = redis.call('GET', KEYS[2])
  if prev then return { prev, 0 } end
end
local size = #ARGV[1]
local id = redis.call('XADD', KEYS[1], '*', 'm', ARGV[1], 'n', size)
local total = redis.call('INCRBY', KEYS[3], size)
local len = redis.call('XLEN', KEYS[1])
local maxLen, maxBytes = tonumber(ARGV[2]), tonumber(ARGV[6])
while len > 1 and (len > maxLen or total > maxBytes) do
  local oldest = redis.call('XRANGE', KEYS[1], '-', '+', 'COUNT', 1)[1]
  local f = oldest[2]
  local n = nil
  for i = 1, #f, 2 do
    if f[i] == 'n' then n = tonumber(f[i + 1]) end
    if f[i] == 'm' and not n then n = #f[i + 1] end
  end
  redis.call('XDEL', KEYS[1], oldest[1])
  total = redis.call('INCRBY', KEYS[3], -(n or 0))
  len = len - 1
end
redis.call('PEXPIRE', KEYS[1], ARGV[3])
redis.call('PEXPIRE', KEYS[3], ARGV[3])
if ARGV[5] == '1' then redis.call('SET', KEYS[2], id, 'PX', ARGV[4]) end
return { id, 1 }
