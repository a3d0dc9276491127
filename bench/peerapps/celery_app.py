"""Celery on Redis (broker and result backend): one task per image."""

import os

import imagehash
from celery import Celery
from PIL import Image

from peerapps.ours import fast_phash

app = Celery("phashbench", broker=os.environ["BENCH_REDIS_URL"], backend=os.environ["BENCH_REDIS_URL"])
app.conf.update(
    task_serializer="json",
    result_serializer="json",
    accept_content=["json"],
    broker_connection_retry_on_startup=True,
    worker_hijack_root_logger=False,
)


@app.task(name="phash")
def phash(path: str) -> str:
    """The perceptual hash of one image, as hex."""
    return str(imagehash.phash(Image.open(path)))


@app.task(name="phash_fast")
def phash_fast(path: str) -> str:
    """The same hash by phash-fleet's fast path (the queue design alone)."""
    return fast_phash(path)
