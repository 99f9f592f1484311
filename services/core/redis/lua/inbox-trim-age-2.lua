--[[
  Retention by age of one inbox: removes the messages older than a cutoff and takes their sizes
  off the inbox's byte count (inbox-append-3.lua), in pages.
  KEYS[1] inbox stream
  KEYS[2] the inbox's byte count (same hash tag)
  ARGV[1] cutoff: messages with ids before this one go ("<ms>-0")
  ARGV[2] at most this many in one call
  Returns the number of messages removed (fewer than ARGV[2]: the inbox is done).
]]
local old = redis.call('XRANGE', KEYS[1], '-', '(' .. ARGV[1], 'COUNT', ARGV[2])
local bytes = 0
for _, e in ipairs(old) do
  local f = e[2]
  local n = nil
  for i = 1, #f, 2 do
    if f[i] == 'n' then n = tonumber(f[i + 1]) end
    if f[i] == 'm' and not n then n = #f[i + 1] end
  end
  bytes = bytes + (n or 0)
  redis.call('XDEL', KEYS[1], e[1])
end
if bytes > 0 and redis.call('EXISTS', KEYS[2]) == 1 then redis.call('INCRBY', KEYS[2], -bytes) end
return #old
