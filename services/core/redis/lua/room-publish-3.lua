--[[
  Publishes one broadcast to a room, in one step: the next entry id of the room's shard (ids
  only grow within a shard, so a pod that reads a shard in order can name its position with one
  id), the entry in the room's stream (its history, read by recovering sessions) and the live
  message on the room's channel (only pods with a member of the room subscribe to it).
  KEYS[1] the shard's sequence: "<ms>-<seq>" of the last id given out in the shard
  KEYS[2] the room's stream (same hash tag)
  KEYS[3] guard key (same hash tag), used by the guards below
  ARGV[1] the room's channel (sharded pub/sub, same hash tag)
  ARGV[2] stream MAXLEN (approximate)
  ARGV[3] stream TTL (ms): a quiet room's history expires with the recovery window
  ARGV[4] body (services/core/adapter/wire.ts)
  ARGV[5] "1" to store and give an id, "0" for a volatile broadcast (live only, no id)
  ARGV[6] guard: "" none; "once": sent at most once (KEYS[3] set NX, TTL ARGV[7] ms);
          "version": a presence transition (ARGV[7] version, ARGV[8] status, ARGV[9] TTL ms of
          KEYS[3] = "<version>:<status>" last announced), sent once per version and never after a
          newer one, nor when the subscribers already have that status
  Returns the entry id ("" for a volatile broadcast), or false when the guard skipped it.
]]
local guard = ARGV[6]
if guard == 'once' then
  if not redis.call('SET', KEYS[3], '1', 'NX', 'PX', ARGV[7]) then return false end
elseif guard == 'version' then
  local last = redis.call('GET', KEYS[3])
  local now = ARGV[7] .. ':' .. ARGV[8]
  if last then
    local sep = string.find(last, ':', 1, true)
    if tonumber(string.sub(last, 1, sep - 1)) >= tonumber(ARGV[7]) then return false end
    if string.sub(last, sep + 1) == ARGV[8] then
      redis.call('SET', KEYS[3], now, 'PX', ARGV[9])
      return false
    end
  end
  redis.call('SET', KEYS[3], now, 'PX', ARGV[9])
end
if ARGV[5] ~= '1' then
  redis.call('SPUBLISH', ARGV[1], '\n' .. ARGV[4])
  return ''
end
local function after(id)
  local m, s = string.match(id or '', '^(%d+)-(%d+)$')
  return tonumber(m) or 0, tonumber(s) or -1
end
local t = redis.call('TIME')
local ms = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local seq = 0
local lm, ls = after(redis.call('GET', KEYS[1]))
-- never below the room's own last entry either (the sequence key could be older after a restore)
local top = redis.call('XREVRANGE', KEYS[2], '+', '-', 'COUNT', 1)[1]
if top then
  local tm, ts = after(top[1])
  if tm > lm or (tm == lm and ts > ls) then lm, ls = tm, ts end
end
if ms <= lm then
  ms = lm
  seq = ls + 1
end
local id = string.format('%.0f-%.0f', ms, seq)
redis.call('SET', KEYS[1], id)
redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[2], id, 'm', ARGV[4])
redis.call('PEXPIRE', KEYS[2], ARGV[3])
redis.call('SPUBLISH', ARGV[1], id .. '\n' .. ARGV[4])
return id
