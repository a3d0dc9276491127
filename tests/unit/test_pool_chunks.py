"""The hashing pool hands tiny files over many to a message, and a file that hangs or kills its process
inside such a chunk still fails alone, with its reason, while the files queued behind it are hashed."""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

import pytest
from PIL import Image

from phashfleet.hashing import HashPool, Settings, hash_ref
from phashfleet.hashing.frames import FrameReader, write_frame


@pytest.fixture
def tiny(tmp_path) -> list[str]:
    """Forty 16x16 PNGs, each a little different."""
    folder = tmp_path / "src"
    folder.mkdir()
    paths = []
    for i in range(40):
        path = folder / f"t{i:02d}.png"
        Image.frombytes("L", (16, 16), bytes((x * (i + 1) + y * 7) % 256 for y in range(16) for x in range(16))).save(
            path
        )
        paths.append(str(path))
    return paths


def huge_png(path: Path) -> str:
    """A legal image (just under Pillow's bomb limit) that takes seconds to decode and resize."""
    Image.new("RGB", (13000, 13000), (90, 120, 150)).save(path, compress_level=1)
    return str(path)


def warmed_pool(tiny: list[str], settings: Settings) -> HashPool:
    """A one-process pool that has timed enough tiny files to send them many to a message."""
    pool = HashPool(1)
    assert all(r["status"] == "ok" for r in pool.imap(tiny, settings))
    assert pool._chunk() > 1, "tiny files should go many to a chunk"
    return pool


def test_records_are_what_hash_ref_gives(tiny):
    settings = Settings(allowed_roots=(str(Path(tiny[0]).parent),))
    with warmed_pool(tiny, settings) as pool:
        timed = list(pool.imap_timed(tiny, settings))
    assert [record for record, _ in timed] == [hash_ref(ref, settings) for ref in tiny]
    assert all(0 < seconds < 5 for _, seconds in timed)


def test_a_hanging_file_inside_a_chunk_times_out_alone(tiny, tmp_path):
    root = str(Path(tiny[0]).parent)
    slow = huge_png(Path(root) / "huge.png")
    settings = Settings(allowed_roots=(root,), timeout_seconds=0.5, exact=True)
    with warmed_pool(tiny, settings) as pool:
        refs = tiny[:10] + [slow] + tiny[10:30]
        timed = list(pool.imap_timed(refs, settings))
        records = [record for record, _ in timed]
        assert [r["path"] for r in records] == refs
        assert [r["status"] for r in records] == ["ok"] * 10 + ["failed"] + ["ok"] * 20
        assert records[10]["reason"].startswith("timeout: no result within 0.5 s")
        assert timed[10][1] >= 0.5
        assert records[11:] == [hash_ref(ref, settings) for ref in tiny[10:30]]
        # the replacement process takes the next batch
        assert [r["status"] for r in pool.imap(tiny, settings)] == ["ok"] * len(tiny)


def test_a_process_killed_inside_a_chunk_fails_that_file_only(tiny):
    root = str(Path(tiny[0]).parent)
    slow = huge_png(Path(root) / "huge.png")
    settings = Settings(allowed_roots=(root,), exact=True)
    with warmed_pool(tiny, settings) as pool:
        child = pool._children[0]
        killed = threading.Event()

        def kill_when_on_the_huge_file() -> None:
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                tasks, process = list(child.tasks), child.process
                if tasks and tasks[0][1] == slow and len(tasks) > 1 and process is not None:
                    process.kill()
                    killed.set()
                    return
                time.sleep(0.005)

        killer = threading.Thread(target=kill_when_on_the_huge_file)
        killer.start()
        refs = tiny[:5] + [slow] + tiny[5:25]
        records = list(pool.imap(refs, settings))
        killer.join()
    assert killed.is_set(), "the huge file was never being hashed with files queued behind it"
    assert records[5]["status"] == "failed" and records[5]["reason"].startswith("crashed:"), records[5]
    assert "signal 9" in records[5]["reason"]
    assert [r["status"] for i, r in enumerate(records) if i != 5] == ["ok"] * 25


def test_frames_come_whole_whatever_the_reads_split():
    read_fd, write_fd = os.pipe()
    try:
        reader = FrameReader()
        write_frame(write_fd, ("first", 1))
        whole = os.read(read_fd, 1 << 16)
        os.write(write_fd, whole[:3])  # half a header
        assert reader.read(read_fd) == []
        os.write(write_fd, whole[3:-1])  # all but the last byte
        assert reader.read(read_fd) == []
        os.write(write_fd, whole[-1:] + whole)  # the rest, and one more frame
        assert reader.read(read_fd) == [("first", 1), ("first", 1)]
        os.close(write_fd)
        write_fd = -1
        assert reader.read(read_fd) is None
    finally:
        os.close(read_fd)
        if write_fd >= 0:
            os.close(write_fd)
