--[[
  Advances a user's acknowledged inbox position, never backwards.
  KEYS[1] acknowledged position of (namespace, user): a stream id
  ARGV[1] the id acknowledged up to
  ARGV[2] retention (ms): the key expires with the inbox
  Returns the position after the call.
]]
local function older(a, b)
  local am, as = string.match(a, '^(%d+)-(%d+)$')
  local bm, bs = string.match(b, '^(%d+)-(%d+)$')
  am, as, bm, bs = tonumber(am), tonumber(as), tonumber(bm), tonumber(bs)
  return am < bm or (am == bm and as < bs)
end
local cur = redis.call('GET', KEYS[1])
if (not cur) or older(cur, ARGV[1]) then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
  return ARGV[1]
end
return cur
