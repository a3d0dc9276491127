-- Keep one lister's report of a shard (the first wins); once every shard is in, set the job's total.
-- KEYS: meta, listing
-- ARGV: shard, files, token, shards ("" unless shard 0: how many shards the source was cut into)
-- Returns 1 kept, 0 reported before, -1 when the job has no state.
if redis.call("EXISTS", KEYS[1]) == 0 then
  return -1
end
if redis.call("HSETNX", KEYS[2], "done:" .. ARGV[1], ARGV[2] .. ":" .. ARGV[3]) == 0 then
  return 0
end
redis.call("HDEL", KEYS[2], "lease:" .. ARGV[1])
if ARGV[4] ~= "" then
  redis.call("HSET", KEYS[2], "shards", ARGV[4], "root", ARGV[3])
end
local shards = tonumber(redis.call("HGET", KEYS[2], "shards") or "-1")
local fields = redis.call("HGETALL", KEYS[2])
local done, total = 0, 0
for i = 1, #fields, 2 do
  if string.sub(fields[i], 1, 5) == "done:" then
    done = done + 1
    total = total + tonumber(string.match(fields[i + 1], "^(%d+)"))
  end
end
if done >= shards and shards >= 0 then
  redis.call("HSET", KEYS[1], "total", total, "source_listed", 1)
end
return 1
