-- Hand out one batch: store its files, mark it in flight and advance the listing cursor, atomically.
-- KEYS: meta, inflight, batch
-- ARGV: batch_id, now, files_json, files_in_batch, listing_done (0/1)
-- Returns 1, or 0 when the batch id was already handed out (a retried call) or the job has no state.
if redis.call("EXISTS", KEYS[1]) == 0 then
  return 0
end
local next_batch = tonumber(redis.call("HGET", KEYS[1], "next_batch") or "0")
if tonumber(ARGV[1]) ~= next_batch then
  return 0
end
redis.call("SET", KEYS[3], ARGV[3])
redis.call("ZADD", KEYS[2], ARGV[2], ARGV[1])
redis.call("HINCRBY", KEYS[1], "listed", ARGV[4])
redis.call("HSET", KEYS[1], "next_batch", next_batch + 1)
if ARGV[5] == "1" then
  redis.call("HSET", KEYS[1], "listing_done", 1)
end
return 1
