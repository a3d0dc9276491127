"""Huey on Redis (results kept in Redis): one task per image."""

import os

import imagehash
from huey import RedisHuey
from PIL import Image

from peerapps.ours import fast_phash

huey = RedisHuey("phashbench", url=os.environ["BENCH_REDIS_URL"])


@huey.task()
def phash(path: str) -> str:
    """The perceptual hash of one image, as hex."""
    return str(imagehash.phash(Image.open(path)))


@huey.task()
def phash_fast(path: str) -> str:
    """The same hash by phash-fleet's fast path (the queue design alone)."""
    return fast_phash(path)
