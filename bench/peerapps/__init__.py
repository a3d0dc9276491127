"""The reference one-task-per-image designs bench/peers.py runs: Celery, Huey and Taskiq, all on Redis.

Each module reads the Redis URL (password included) from BENCH_REDIS_URL and declares two tasks:
`phash(path)`, which returns `str(imagehash.phash(Image.open(path)))` (the system as a user gets it),
and `phash_fast(path)`, which calls our own fast hash (ours.py), so the queue design alone differs.
"""
