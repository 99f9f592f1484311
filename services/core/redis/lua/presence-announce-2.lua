--[[
  Publishes a presence transition to every pod at most once, and never after a newer one, by
  appending the adapter's broadcast entry to its stream in the same script that records it.
  KEYS[1] adapter stream (every pod reads it; recovering clients replay it)
  KEYS[2] last announced transition of (namespace, user), "<version>:<status>", with a TTL;
          its hash tag is the stream key so both share a cluster slot
  ARGV[1] version, ARGV[2] status, ARGV[3] stream MAXLEN (approximate), ARGV[4] TTL of KEYS[2] (ms)
  ARGV[5..] field/value pairs of the adapter stream entry
  Returns the entry id, or false when skipped: this version (or a newer one) was announced
  already, or a newer transition overtook an older one and the subscribers already have the
  current status (they never see the same status twice in a row).
]]
local last = redis.call('GET', KEYS[2])
local now = ARGV[1] .. ':' .. ARGV[2]
if last then
  local sep = string.find(last, ':', 1, true)
  if tonumber(string.sub(last, 1, sep - 1)) >= tonumber(ARGV[1]) then return false end
  if string.sub(last, sep + 1) == ARGV[2] then
    redis.call('SET', KEYS[2], now, 'PX', ARGV[4])
    return false
  end
end
redis.call('SET', KEYS[2], now, 'PX', ARGV[4])
local entry = {}
for i = 5, #ARGV do entry[#entry + 1] = ARGV[i] end
return redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[3], '*', unpack(entry))
