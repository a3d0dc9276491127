"""spec.maxRetries on real worker processes and real Redis: a batch that keeps raising becomes failed records,
a file whose server answers 503 is read again, a permanent error fails at once."""

from __future__ import annotations

import collections
import io
import os
import time
from http.server import BaseHTTPRequestHandler
from pathlib import Path

import pytest

from harness.listers import hand_out_files
from harness.outage import serving
from harness.results import records_of
from harness.synthetic import photo_like
from harness.wait import wait_for
from phashfleet.job.spec import parse_spec
from phashfleet.state import keys
from phashfleet.state.redis_store import RedisJobStore
from phashfleet.worker.actor import send_batch
from phashfleet.worker.broker import make_broker, redis_client


def make_job(redis_env, name: str, settings: dict, batches: list[list[str]]) -> tuple[RedisJobStore, str]:
    """Create a job with these stored settings, hand out its batches and send them: (store, job id)."""
    client = redis_client(redis_env["PHASHFLEET_REDIS_URL"], redis_env["PHASHFLEET_REDIS_PASSWORD"])
    store, broker = RedisJobStore(client), make_broker(client)
    job_id = f"test.{name}.{os.getpid()}"
    store.create(job_id, settings, sum(map(len, batches)))
    for batch_id, files in enumerate(batches):
        assert hand_out_files(store, job_id, batch_id, files, time.time(), listing_done=batch_id == len(batches) - 1)
        send_batch(broker, job_id, batch_id)
    return store, job_id


def finished(store: RedisJobStore, job_id: str, timeout: float):
    return wait_for(
        lambda: (s := store.snapshot(job_id)).finished and s,
        timeout=timeout,
        interval=0.2,
        what=f"job {job_id} finished",
    )


def test_a_batch_that_always_raises_becomes_failed_records_after_max_retries(redis_env, start_worker, tmp_path):
    """whash with hashSize 12 (the CRD refuses it now; a job created before, or settings written by hand,
    still reach a worker) makes every batch raise ValueError: after maxRetries retries per batch the files
    are failed records with the error as reason, the job ends, and nothing is left in the dead-letter queue."""
    photos = tmp_path / "photos"
    photos.mkdir()
    for i in range(6):
        photo_like(64, 48, seed=i).save(photos / f"p{i}.jpg")
    max_retries = 2
    settings = {
        **parse_spec({"source": {"uri": str(photos)}, "maxRetries": max_retries}).hash_settings(),
        "algorithm": "whash",
        "hash_size": 12,
    }
    files = sorted(str(p) for p in photos.iterdir())
    store, job_id = make_job(redis_env, "poison", settings, [files[:3], files[3:]])
    worker = start_worker(str(photos))

    snap = finished(store, job_id, timeout=120)
    assert (snap.failed, snap.ok, snap.done_files, snap.total) == (6, 0, 6, 6)
    records = records_of(store, job_id)
    assert sorted(r["path"] for r in records) == files
    assert {r["reason"] for r in records} == {
        "batch_error: ValueError: whash needs a power-of-two hash_size (4, 8, 16, 32), not 12"
    }
    assert store.failures(job_id)[0]["status"] == "failed"
    # Each batch was tried 1 + maxRetries times, not more, and Dramatiq gave up on no message.
    log = worker.log_path.read_text()
    assert log.count("trying again") == 2 * max_retries, worker.log_tail()
    assert log.count("raised on its last try (3)") == 2, worker.log_tail()
    assert store.client.zcard(keys.dramatiq_queue() + ".XQ") == 0
    # Every failed file has a WARNING line with its path and reason.
    assert all(f"failed {path}: batch_error: ValueError" in log for path in files), worker.log_tail()


PNG = io.BytesIO()
photo_like(64, 48, seed=7).save(PNG, format="PNG")


class FlakyImages(BaseHTTPRequestHandler):
    """/flaky/*: 503 for the first FLAKY_GETS GETs of each path, then the image; /missing/*: 404;
    /garbage/*: bytes that are no image. HEAD always answers like a good GET (size, no version)."""

    gets: collections.Counter = collections.Counter()

    def _answer(self, body: bool) -> None:
        # fsspec's `info` (the cache lookup's) falls back from a failed HEAD to a GET asking for the identity
        # encoding; only the other GETs are reads of the file.
        if body and self.headers.get("Accept-Encoding") != "identity":
            self.gets[self.path] += 1
        if self.path.startswith("/missing/"):
            self.send_error(404)
            return
        if body and self.path.startswith("/flaky/") and self.gets[self.path] <= FLAKY_GETS:
            self.send_error(503)
            return
        data = b"not an image at all" * 10 if self.path.startswith("/garbage/") else PNG.getvalue()
        self.send_response(200)
        self.send_header("Content-Type", "image/png")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if body:
            self.wfile.write(data)

    def do_GET(self):
        self._answer(body=True)

    def do_HEAD(self):
        self._answer(body=False)

    def log_message(self, *args):
        pass


FLAKY_GETS = 2


@pytest.fixture
def flaky_site():
    """Base URL of a loopback HTTP server of FlakyImages; its GET counts start at zero."""
    FlakyImages.gets = collections.Counter()
    with serving(FlakyImages) as (_, base):
        yield base


def test_a_file_answering_503_twice_is_read_again_up_to_max_retries(redis_env, start_worker, flaky_site):
    """503 twice, then the image: `ok` with maxRetries 3, `failed` with maxRetries 1; a 404 and an
    undecodable file fail on their first read whatever maxRetries says."""

    def settings(max_retries: int) -> dict:
        return parse_spec({"source": {"uri": flaky_site + "/"}, "maxRetries": max_retries}).hash_settings()

    patient_files = [f"{flaky_site}/flaky/a.png", f"{flaky_site}/missing/c.png", f"{flaky_site}/garbage/d.png"]
    patient, patient_id = make_job(redis_env, "patient", settings(3), [patient_files])
    hasty, hasty_id = make_job(redis_env, "hasty", settings(1), [[f"{flaky_site}/flaky/b.png"]])
    start_worker()

    snap = finished(patient, patient_id, timeout=120)
    assert (snap.ok, snap.failed) == (1, 2)
    got = {r["path"].rsplit("/", 2)[-2]: r for r in records_of(patient, patient_id)}
    assert got["flaky"]["status"] == "ok" and got["flaky"]["hash"], got["flaky"]
    assert got["missing"]["reason"].startswith("not_found:"), got["missing"]
    assert got["garbage"]["reason"].startswith("decode_error:"), got["garbage"]

    snap = finished(hasty, hasty_id, timeout=120)
    assert (snap.ok, snap.failed) == (0, 1)
    (record,) = records_of(hasty, hasty_id)
    assert record["reason"].startswith("read_error: ClientResponseError: 503"), record
    assert record["reason"].endswith("(gave up after 2 attempts)"), record

    # Reads per file: 1 + the retries it needed or was allowed; none for a permanent error.
    assert FlakyImages.gets == {"/flaky/a.png": 3, "/missing/c.png": 1, "/garbage/d.png": 1, "/flaky/b.png": 2}


def test_phashfleet_run_honours_max_retries_for_a_flaky_file(flaky_site):
    """The embedded run reads a file answering 503 twice like a worker does: ok with maxRetries 3, failed with 1."""
    from phashfleet.embedded.run import run_embedded

    def run(name: str, max_retries: int) -> dict:
        spec = parse_spec({"source": {"uri": f"{flaky_site}/flaky/{name}.png"}, "maxRetries": max_retries})
        return run_embedded(spec, f"local.{name}.1", (), jobs=1).status

    patient = run("patient", 3)
    assert (patient["succeeded"], patient["failed"]) == (1, 0), patient
    hasty = run("hasty", 1)
    assert (hasty["succeeded"], hasty["failed"]) == (0, 1), hasty
    assert hasty["failures"][0]["reason"].endswith("(gave up after 2 attempts)"), hasty


def _always_raises(files, settings, roots):
    """A stand-in for a hashing bug: leaves a mark per call in $CALLS_DIR, then raises."""
    (Path(os.environ["CALLS_DIR"]) / f"{os.getpid()}-{time.monotonic_ns()}").touch()
    raise RuntimeError("hashing library bug")


def test_phashfleet_run_turns_a_batch_that_keeps_raising_into_failed_records(tmp_path, monkeypatch):
    """A batch that raises in the embedded pool is tried 1 + maxRetries times, then its files are failed
    records with the error as reason and the run ends Failed, not with a traceback."""
    from phashfleet.embedded import run as localrun

    calls = tmp_path / "calls"
    calls.mkdir()

    monkeypatch.setenv("CALLS_DIR", str(calls))
    photos = tmp_path / "photos"
    photos.mkdir()
    for i in range(3):
        photo_like(32, 32, seed=i).save(photos / f"p{i}.png")
    monkeypatch.setattr(localrun, "_hash_batch", _always_raises)  # the pool forks, so its processes see it
    spec = parse_spec({"source": {"uri": str(photos)}, "maxRetries": 2, "batchSize": 8})
    status = localrun.run_embedded(spec, "local.poison.1", (str(photos),), jobs=1).status
    assert (status["phase"], status["failed"], status["succeeded"]) == ("Failed", 3, 0), status
    assert {f["reason"] for f in status["failures"]} == {"batch_error: RuntimeError: hashing library bug"}
    assert len(list(calls.iterdir())) == 3  # one batch, tried 1 + maxRetries times
