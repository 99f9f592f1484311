--[[
  Appends a broadcast to the adapter stream unless an entry with the same id was appended
  before (within the TTL): a retried announcement is sent once.
  KEYS[1] adapter stream
  KEYS[2] marker of this announcement; its hash tag is the stream key so both share a cluster slot
  ARGV[1] TTL of the marker (ms), ARGV[2] stream MAXLEN (approximate)
  ARGV[3..] field/value pairs of the adapter stream entry
  Returns the entry id, or false when it was sent before.
]]
if not redis.call('SET', KEYS[2], '1', 'NX', 'PX', ARGV[1]) then return false end
local entry = {}
for i = 3, #ARGV do entry[#entry + 1] = ARGV[i] end
return redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[2], '*', unpack(entry))
