"""Job state: the Redis keys, the Redis and in-memory stores, the Lua scripts, the content cache."""
