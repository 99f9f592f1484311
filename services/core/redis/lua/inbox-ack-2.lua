--[[
  Advances a user's acknowledged inbox position, never backwards, and never past the newest
  message in the inbox: an id from the future (a client's mistake) must not swallow the messages
  that arrive later.
  KEYS[1] acknowledged position of (namespace, user): a stream id
  KEYS[2] the inbox stream (same hash tag)
  ARGV[1] the id acknowledged up to
  ARGV[2] retention (ms): the key expires with the inbox
  Returns the position after the call ("0-0" when nothing was ever acknowledged).
]]
local function older(a, b)
  local am, as = string.match(a, '^(%d+)-(%d+)$')
  local bm, bs = string.match(b, '^(%d+)-(%d+)$')
  am, as, bm, bs = tonumber(am), tonumber(as), tonumber(bm), tonumber(bs)
  return am < bm or (am == bm and as < bs)
end
local upTo = ARGV[1]
local newest = redis.call('XREVRANGE', KEYS[2], '+', '-', 'COUNT', 1)[1]
if not newest then return redis.call('GET', KEYS[1]) or '0-0' end
if older(newest[1], upTo) then upTo = newest[1] end
local cur = redis.call('GET', KEYS[1])
if (not cur) or older(cur, upTo) then
  redis.call('SET', KEYS[1], upTo, 'PX', ARGV[2])
  return upTo
end
return cur
