"""Huey on Redis (results kept in Redis): one task per image."""

import os

import imagehash
from huey import RedisHuey
from PIL import Image

huey = RedisHuey("phashbench", url=os.environ["BENCH_REDIS_URL"])


@huey.task()
def phash(path: str) -> str:
    """The perceptual hash of one image, as hex."""
    return str(imagehash.phash(Image.open(path)))
