-- Count a finished batch once and close it: counts, first failures, in-flight and lease entries, its file list.
-- KEYS: meta, counts, failures, inflight, leases, batch
-- ARGV: batch_id, ok, failed, skipped, cached, max_failures (failed records kept in the list),
--       then the batch's failed records (JSON), in order
-- Returns 1 when the batch was counted now, 0 when it was not in flight (done before, or dropped),
-- -1 when the job has no state (deleted or lost).
if redis.call("EXISTS", KEYS[1]) == 0 then
  return -1
end
if not redis.call("ZSCORE", KEYS[4], ARGV[1]) then
  return 0
end
redis.call("ZREM", KEYS[4], ARGV[1])
redis.call("ZREM", KEYS[5], ARGV[1])
redis.call("DEL", KEYS[6])
local fields = {"ok", "failed", "skipped", "cached"}
for i = 1, 4 do
  local n = tonumber(ARGV[i + 1])
  if n > 0 then
    redis.call("HINCRBY", KEYS[2], fields[i], n)
  end
end
local room = tonumber(ARGV[6]) - redis.call("LLEN", KEYS[3])
for i = 7, #ARGV do
  if room <= 0 then
    break
  end
  redis.call("RPUSH", KEYS[3], ARGV[i])
  room = room - 1
end
return 1
