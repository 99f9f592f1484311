--[[
  Reads a page of a room's history for a recovering session (or a pod filling a gap in its live
  feed), and tells whether the history still holds everything after the position: trimming
  (MAXLEN) may have dropped entries the reader needs.
  KEYS[1] the room's stream
  ARGV[1] position: entries strictly after this id
  ARGV[2] the last id to read (inclusive)
  ARGV[3] page size (COUNT)
  Returns { trimmed (1 when an entry after the position was trimmed away), entries }
]]
if redis.call('EXISTS', KEYS[1]) == 0 then return { 0, {} } end
local function parse(id)
  local m, s = string.match(id or '', '^(%d+)-(%d+)$')
  return tonumber(m) or 0, tonumber(s) or 0
end
local trimmed = 0
local info = redis.call('XINFO', 'STREAM', KEYS[1])
for i = 1, #info, 2 do
  if info[i] == 'max-deleted-entry-id' then
    local dm, ds = parse(info[i + 1])
    local pm, ps = parse(ARGV[1])
    if dm > pm or (dm == pm and ds > ps) then trimmed = 1 end
  end
end
return { trimmed, redis.call('XRANGE', KEYS[1], '(' .. ARGV[1], ARGV[2], 'COUNT', ARGV[3]) }
