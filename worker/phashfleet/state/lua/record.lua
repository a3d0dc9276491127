-- Record finished files of one batch, idempotently, and optionally mark the batch done.
-- KEYS: meta, results, counts, failures, inflight, leases, batch
-- ARGV: batch_id, finish (0/1), lease_deadline, max_failures (failed records kept in the list), then
--       quadruples: path, status, cached (1: served from the content cache, counted as "cached" too), record_json
-- Returns the number of records that were new, or -1 when the job has no state (deleted or lost).
if redis.call("EXISTS", KEYS[1]) == 0 then
  return -1
end
local new = 0
local max_failures = tonumber(ARGV[4])
for i = 5, #ARGV, 4 do
  local path, status, cached, record = ARGV[i], ARGV[i + 1], ARGV[i + 2], ARGV[i + 3]
  if redis.call("HSETNX", KEYS[2], path, record) == 1 then
    new = new + 1
    redis.call("HINCRBY", KEYS[3], status, 1)
    if cached == "1" then
      redis.call("HINCRBY", KEYS[3], "cached", 1)
    end
    if status == "failed" and redis.call("LLEN", KEYS[4]) < max_failures then
      redis.call("RPUSH", KEYS[4], record)
    end
  end
end
if ARGV[2] == "1" then
  redis.call("ZREM", KEYS[5], ARGV[1])
  redis.call("ZREM", KEYS[6], ARGV[1])
  redis.call("DEL", KEYS[7])
elseif redis.call("ZSCORE", KEYS[5], ARGV[1]) then
  redis.call("ZADD", KEYS[6], ARGV[3], ARGV[1])
end
return new
