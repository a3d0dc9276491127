"""The reference one-task-per-image designs bench/peers.py runs: Celery, Huey and Taskiq, all on Redis.

Each module reads the Redis URL (password included) from BENCH_REDIS_URL and declares one task,
`phash(path)`, that returns `str(imagehash.phash(Image.open(path)))`.
"""
