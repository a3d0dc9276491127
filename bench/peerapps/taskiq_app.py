"""Taskiq with taskiq-redis (list queue broker, Redis result backend): one task per image."""

import os

import imagehash
from PIL import Image
from taskiq_redis import ListQueueBroker, RedisAsyncResultBackend

from peerapps.ours import fast_phash

URL = os.environ["BENCH_REDIS_URL"]
# With redis-py 8 an idle BRPOP hits the default socket timeout and the worker dies (an open
# taskiq-redis issue); no socket timeout keeps idle workers alive.
broker = ListQueueBroker(URL, queue_name="phashbench", socket_timeout=None).with_result_backend(
    RedisAsyncResultBackend(URL, socket_timeout=None)
)


@broker.task(task_name="phash")
async def phash(path: str) -> str:
    """The perceptual hash of one image, as hex (CPU-bound: it holds the worker's event loop, as one would)."""
    return str(imagehash.phash(Image.open(path)))


@broker.task(task_name="phash_fast")
async def phash_fast(path: str) -> str:
    """The same hash by phash-fleet's fast path (the queue design alone)."""
    return fast_phash(path)
