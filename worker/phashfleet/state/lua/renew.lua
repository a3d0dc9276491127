-- Renew a worker's lease on a batch, only while the batch is in flight (a finished one never gets a lease back).
-- KEYS: inflight, leases
-- ARGV: batch_id, lease_deadline
-- Returns 1 when renewed, 0 when the batch is no longer in flight.
if not redis.call("ZSCORE", KEYS[1], ARGV[1]) then
  return 0
end
redis.call("ZADD", KEYS[2], ARGV[2], ARGV[1])
return 1
