"""Every bad input becomes a record with a coded reason, and the batch goes on."""

from __future__ import annotations

import io
import os
import wave
from pathlib import Path

import pytest
from PIL import Image

from harness.synthetic import photo_like
from phashfleet.hashing import HashPool, Settings, hash_ref


@pytest.fixture
def root(tmp_path) -> Path:
    folder = tmp_path / "src"
    folder.mkdir()
    return folder


@pytest.fixture
def good_jpeg() -> bytes:
    buffer = io.BytesIO()
    photo_like(160, 120, seed=5).save(buffer, "JPEG", quality=90)
    return buffer.getvalue()


def huge_png(path: Path) -> Path:
    """A legal image (just under Pillow's bomb limit) that takes seconds to decode and resize."""
    Image.new("RGB", (13000, 13000), (90, 120, 150)).save(path, compress_level=1)
    return path


def settings(root: Path, **kw) -> Settings:
    return Settings(allowed_roots=(str(root),), **kw)


def reason(record: dict) -> str:
    assert record["hash"] is None, record
    return record["reason"]


@pytest.mark.parametrize("exact", [False, True])
def test_corrupt_files_fail_with_a_decode_reason(root, good_jpeg, exact):
    cases = {
        "empty.jpg": b"",
        "random.jpg": os.urandom(4096),
        "random.png": os.urandom(100),
        "truncated.jpg": good_jpeg[: len(good_jpeg) // 2],
        "header-only.png": b"\x89PNG\r\n\x1a\n" + b"\x00" * 20,
    }
    for name, data in cases.items():
        (root / name).write_bytes(data)
    codes = {name: reason(hash_ref(str(root / name), settings(root, exact=exact))) for name in cases}
    assert codes["empty.jpg"].startswith("empty:")
    for name in ("random.jpg", "random.png", "truncated.jpg", "header-only.png"):
        assert codes[name].startswith("decode_error:"), (name, codes[name])
    for name in cases:
        assert hash_ref(str(root / name), settings(root, exact=exact))["status"] == "failed"


def test_decompression_bomb_is_reported_as_such(root):
    path = root / "bomb.png"
    Image.new("1", (20000, 10000)).save(path)  # 200 MP: over Pillow's 2x MAX_IMAGE_PIXELS limit
    record = hash_ref(str(path), settings(root))
    assert record["status"] == "failed"
    assert reason(record).startswith("decompression_bomb:")
    assert record["bytes"] == path.stat().st_size


def test_directory_and_fifo_with_image_names_are_not_files(root):
    (root / "folder.jpg").mkdir()
    os.mkfifo(root / "pipe.jpg")  # opening it for reading would block forever
    assert reason(hash_ref(str(root / "folder.jpg"), settings(root))).startswith("not_a_file:")
    assert "FIFO" in reason(hash_ref(str(root / "pipe.jpg"), settings(root)))


def test_unreadable_file_is_permission_denied(good_jpeg):
    """chmod 0 keeps out everyone but root; as root, the check runs in a child that is `nobody`."""
    import json
    import tempfile

    folder = Path(tempfile.mkdtemp(prefix="phashfleet-perm-"))
    try:
        folder.chmod(0o755)
        path = folder / "secret.jpg"
        path.write_bytes(good_jpeg)
        path.chmod(0)
        if os.geteuid() != 0:
            assert reason(hash_ref(str(path), settings(folder))).startswith("permission_denied:")
            return
        read_end, write_end = os.pipe()
        pid = os.fork()
        if pid == 0:  # the child: drop to nobody, hash, report, and leave without running pytest's exit
            try:
                os.setgid(65534)
                os.setuid(65534)
                record = hash_ref(str(path), settings(folder))
                os.write(write_end, json.dumps(record).encode())
            finally:
                os._exit(0)
        os.close(write_end)
        with os.fdopen(read_end, "rb") as pipe:
            record = json.loads(pipe.read() or b"{}")
        os.waitpid(pid, 0)
        assert reason(record).startswith("permission_denied:"), record
    finally:
        for item in folder.iterdir():
            item.unlink()
        folder.rmdir()


def test_unreadable_file_is_permission_denied_via_a_failing_open(root, good_jpeg, monkeypatch):
    """Same check that works as root: the open itself refuses."""
    path = root / "secret.jpg"
    path.write_bytes(good_jpeg)
    real_open = os.open

    def refuse(file, flags, *args, **kwargs):
        if str(file).endswith("secret.jpg"):
            raise PermissionError(13, "Permission denied", str(file))
        return real_open(file, flags, *args, **kwargs)

    monkeypatch.setattr(os, "open", refuse)
    assert reason(hash_ref(str(path), settings(root))).startswith("permission_denied:")


def test_paths_leaving_the_roots_fail_without_being_opened(root, tmp_path, good_jpeg, monkeypatch):
    outside = tmp_path / "outside.jpg"
    outside.write_bytes(good_jpeg)
    (root / "escape.jpg").symlink_to(outside)
    opened = []
    real_open = os.open
    monkeypatch.setattr(os, "open", lambda f, *a, **k: opened.append(str(f)) or real_open(f, *a, **k))
    for ref in (str(outside), str(root / "escape.jpg"), str(root / ".." / "outside.jpg"), f"file://{outside}"):
        record = hash_ref(ref, settings(root))
        assert record["status"] == "failed"
        assert reason(record).startswith("outside_roots:"), ref
    assert not any("outside.jpg" in name for name in opened)


def test_missing_file_is_not_found(root):
    assert reason(hash_ref(str(root / "gone.jpg"), settings(root))).startswith("not_found:")


def test_names_with_spaces_and_non_ascii_hash_fine(root, good_jpeg):
    for name in ("holiday photo.jpg", "été à Zürich 写真.jpg"):
        (root / name).write_bytes(good_jpeg)
        record = hash_ref(str(root / name), settings(root))
        assert record["status"] == "ok" and record["path"].endswith(name)
        encoded = "file://" + str(root / name).replace(" ", "%20")
        assert hash_ref(encoded, settings(root))["hash"] == record["hash"]


def test_audio_text_and_other_files_are_skipped_not_failed(root):
    with wave.open(str(root / "sound.wav"), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(8000)
        out.writeframes(b"\x00\x00" * 800)
    (root / "song.mp3").write_bytes(b"ID3\x03\x00\x00\x00\x00\x00\x0f" + os.urandom(200))
    (root / "notes.txt").write_text("not a picture\n")
    (root / "data.bin").write_bytes(bytes(range(256)) * 4)
    (root / "empty.txt").write_bytes(b"")
    for name in ("sound.wav", "song.mp3", "notes.txt", "data.bin", "empty.txt"):
        record = hash_ref(str(root / name), settings(root))
        assert record["status"] == "skipped", (name, record)
        assert reason(record).startswith("not_an_image:")
    assert "audio" in hash_ref(str(root / "sound.wav"), settings(root))["reason"]


def test_pool_times_out_a_slow_file_and_finishes_the_batch(root, good_jpeg):
    """A legal but huge image takes far longer than the limit to decode: its process is killed."""
    slow = huge_png(root / "huge.png")
    names = []
    for i in range(3):
        (root / f"ok{i}.jpg").write_bytes(good_jpeg)
        names.append(str(root / f"ok{i}.jpg"))
    refs = [names[0], str(slow), names[1], names[2]]
    with HashPool(1) as pool:
        records = list(pool.imap(refs, settings(root, timeout_seconds=0.5, exact=True)))
        assert [r["path"] for r in records] == refs
        assert [r["status"] for r in records] == ["ok", "failed", "ok", "ok"]
        assert records[1]["reason"].startswith("timeout:")
        # the replacement process keeps working for the next batch
        again = list(pool.imap(names, settings(root)))
        assert [r["status"] for r in again] == ["ok", "ok", "ok"]


def test_remote_refs_go_through_fsspec(good_jpeg, monkeypatch):
    import fsspec

    monkeypatch.setenv("PHASHFLEET_EXTRA_SCHEMES", "memory")  # an in-process stand-in for s3/http here

    fs = fsspec.filesystem("memory")
    fs.pipe("/bucket/photo.jpg", good_jpeg)
    fs.pipe("/bucket/readme.txt", b"words")
    try:
        ok = hash_ref("memory://bucket/photo.jpg", Settings())
        assert ok["status"] == "ok" and ok["bytes"] == len(good_jpeg) and len(ok["hash"]) == 16
        assert hash_ref("memory://bucket/readme.txt", Settings())["status"] == "skipped"
        assert reason(hash_ref("memory://bucket/missing.jpg", Settings())).startswith("not_found:")
    finally:
        fs.rm("/bucket", recursive=True)


def test_a_child_that_dies_mid_file_is_recorded_and_replaced(root, good_jpeg):
    import threading
    import time

    slow = huge_png(root / "huge.png")
    (root / "ok.jpg").write_bytes(good_jpeg)
    with HashPool(1) as pool:
        child = pool._children[0]

        def kill_when_busy():
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                tasks, process = list(child.tasks), child.process
                if tasks and tasks[0][1].endswith("huge.png") and process is not None:
                    process.kill()
                    return
                time.sleep(0.005)

        killer = threading.Thread(target=kill_when_busy)
        killer.start()
        records = list(pool.imap([str(slow), str(root / "ok.jpg")], settings(root, exact=True)))
        killer.join()
    assert records[0]["status"] == "failed" and records[0]["reason"].startswith("crashed:"), records[0]
    assert "signal 9" in records[0]["reason"]
    assert records[1]["status"] == "ok"


def test_urls_of_other_filesystems_are_refused_unopened(tmp_path, monkeypatch):
    """local://, memory:// and chained URLs could reach around the allowed roots: never opened."""
    from phashfleet.hashing import Settings, hash_ref

    secret = tmp_path / "secret.jpg"
    secret.write_bytes(b"\xff\xd8\xff")
    settings = Settings(allowed_roots=(str(tmp_path / "photos"),))
    monkeypatch.delenv("PHASHFLEET_EXTRA_SCHEMES", raising=False)
    for ref in (f"local://{secret}", "memory://x.jpg", f"simplecache::file://{secret}"):
        record = hash_ref(ref, settings)
        assert record["status"] == "failed" and record["reason"].startswith("unsupported_source"), record
