"""Celery on Redis (broker and result backend): one task per image."""

import os

import imagehash
from celery import Celery
from PIL import Image

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
