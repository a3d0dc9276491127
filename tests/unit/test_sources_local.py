"""Local source listing: globs, files list, fixed order, resume by skip, symlinks, odd names, streaming."""

from __future__ import annotations

import itertools
import logging
import os
import shutil
import tempfile
import tracemalloc
from pathlib import Path

import pytest

from phashfleet.files.listing import (
    GlobMatcher,
    SourceError,
    SourceNotFoundError,
    SourceOutsideRootsError,
    SourcePermissionError,
    SourceSpecError,
    iter_source,
)

IS_ROOT = hasattr(os, "geteuid") and os.geteuid() == 0


def touch(root: Path, *names: str) -> None:
    for name in names:
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"x")


def rel(refs, root: Path) -> list[str]:
    return [os.path.relpath(r, root) for r in refs]


def listing(root: Path, **source) -> list[str]:
    return rel(iter_source({"uri": str(root), **source}, [str(root)]), root)


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    root = tmp_path / "photos"
    touch(
        root,
        "b.jpg",
        "A.JPG",
        "c.png",
        "notes.txt",
        "song.mp3",
        "clip.MP4",
        "sub/x.jpeg",
        "sub/deeper/y.webp",
        "sub/deeper/z.txt",
        "alpha/k.gif",
        "thumbs/t.jpg",
    )
    return root


def test_default_include_takes_images_and_videos_in_any_case(tree):
    assert listing(tree) == [
        "A.JPG",
        "b.jpg",
        "c.png",
        "clip.MP4",
        "alpha/k.gif",
        "sub/x.jpeg",
        "sub/deeper/y.webp",
        "thumbs/t.jpg",
    ]


def test_double_star_glob_matches_top_level_and_nested_case_insensitively(tree):
    assert listing(tree, include=["**/*.JPG"]) == ["A.JPG", "b.jpg", "thumbs/t.jpg"]
    assert listing(tree, include=["*.jpg"]) == ["A.JPG", "b.jpg"]
    assert listing(tree, include=["sub/**"]) == ["sub/x.jpeg", "sub/deeper/y.webp", "sub/deeper/z.txt"]


def test_empty_include_means_every_file(tree):
    assert "notes.txt" in listing(tree, include=[]) and "song.mp3" in listing(tree, include=[])


def test_excludes_drop_files_and_whole_folders(tree):
    assert listing(tree, exclude=["thumbs/**", "**/*.png", "sub/deeper/*"]) == [
        "A.JPG",
        "b.jpg",
        "clip.MP4",
        "alpha/k.gif",
        "sub/x.jpeg",
    ]


def test_excluded_folder_is_not_entered(tmp_path):
    root = tmp_path / "r"
    touch(root, "keep.jpg")
    (root / "skip").mkdir()
    (root / "skip" / "out").symlink_to(tmp_path)  # would be reported if the walk went in
    errors = []
    refs = list(
        iter_source(
            {"uri": str(root), "exclude": ["skip/**"]}, [str(root)], on_error=lambda ref, exc: errors.append(ref)
        )
    )
    assert rel(refs, root) == ["keep.jpg"]
    assert errors == []
    list(iter_source({"uri": str(root)}, [str(root)], on_error=lambda ref, exc: errors.append(ref)))
    assert errors == [str(root / "skip" / "out")]


def test_glob_matcher_prunes_only_what_exclude_covers():
    matcher = GlobMatcher(None, ["**/.cache/**", "tmp/*"])
    assert matcher.prunes_dir(".cache") and matcher.prunes_dir("a/b/.cache")
    assert not matcher.prunes_dir("tmp")  # tmp/* leaves tmp/sub/x.jpg included
    assert matcher.wants_file("tmp/sub/x.jpg") and not matcher.wants_file("tmp/x.jpg")


def test_files_come_first_then_listing_without_repeats(tree):
    refs = list(
        iter_source(
            {
                "uri": f"file://{tree}",
                "files": ["sub/x.jpeg", f"file://{tree}/c.png", str(tree / "c.png"), "notes.txt"],
                "include": ["**/*.jpeg", "**/*.png"],
            },
            [str(tree)],
        )
    )
    assert rel(refs, tree) == ["sub/x.jpeg", "c.png", "notes.txt"]  # explicit files skip the globs
    assert all(os.path.isabs(r) for r in refs)


def test_files_only_source_needs_no_uri(tmp_path):
    assert list(iter_source({"files": ["s3://b/k.jpg", "/abs/a.jpg"]}, [])) == ["s3://b/k.jpg", "/abs/a.jpg"]


def test_order_is_files_sorted_then_folders_sorted_and_repeatable(tmp_path):
    root = tmp_path / "r"
    touch(root, "z.jpg", "a.jpg", "m/2.jpg", "m/1.jpg", "b/9.jpg", "b/c/0.jpg", "B.jpg", "é.jpg")
    expected = ["B.jpg", "a.jpg", "z.jpg", "é.jpg", "b/9.jpg", "b/c/0.jpg", "m/1.jpg", "m/2.jpg"]
    assert listing(root) == expected
    assert listing(root) == expected


def test_listing_resumes_by_skipping_the_first_n(tree):
    full = list(iter_source({"uri": str(tree)}, [str(tree)]))
    for n in range(len(full) + 1):
        head = list(itertools.islice(iter_source({"uri": str(tree)}, [str(tree)]), n))
        tail = list(itertools.islice(iter_source({"uri": str(tree)}, [str(tree)]), n, None))
        assert head + tail == full


def test_symlinked_folder_leaving_the_roots_is_not_followed(tmp_path):
    root, outside = tmp_path / "root", tmp_path / "outside"
    touch(root, "in.jpg", "inner/i.jpg")
    touch(outside, "secret.jpg")
    (root / "escape").symlink_to(outside)
    (root / "alias").symlink_to(root / "inner")  # stays inside: followed
    errors = []
    refs = list(iter_source({"uri": str(root)}, [str(root)], on_error=lambda ref, exc: errors.append((ref, exc))))
    assert rel(refs, root) == ["in.jpg", "alias/i.jpg", "inner/i.jpg"]
    assert [e[0] for e in errors] == [str(root / "escape")]
    assert "outside_roots" in str(errors[0][1])


def test_symlinked_file_leaving_the_roots_is_listed_for_the_worker_to_refuse(tmp_path):
    root, outside = tmp_path / "root", tmp_path / "outside"
    touch(outside, "secret.jpg")
    root.mkdir()
    (root / "link.jpg").symlink_to(outside / "secret.jpg")
    assert listing(root) == ["link.jpg"]


@pytest.mark.timeout(20)
def test_symlink_loops_end(tmp_path):
    root = tmp_path / "r"
    touch(root, "a/1.jpg", "b/2.jpg")
    (root / "a" / "up").symlink_to(root)  # back to the top
    (root / "a" / "to_b").symlink_to(root / "b")  # a -> b -> a ...
    (root / "b" / "to_a").symlink_to(root / "a")
    (root / "self.jpg").symlink_to(root / "self.jpg")
    refs = listing(root)
    assert refs == ["self.jpg", "a/1.jpg", "a/to_b/2.jpg", "b/2.jpg", "b/to_a/1.jpg"]


def test_odd_names_come_back_exactly(tmp_path):
    root = tmp_path / "r"
    names = ["with space.jpg", "ünïcødé 写真.jpg", "new\nline.jpg", "tab\t.png", "quote'\".jpg", "dir with space/ä.jpg"]
    touch(root, *names)
    refs = list(iter_source({"uri": str(root)}, [str(root)]))
    assert sorted(rel(refs, root)) == sorted(names)
    assert all(os.path.exists(r) for r in refs)


def test_undecodable_name_is_left_out_and_logged(tmp_path, caplog):
    root = tmp_path / "r"
    touch(root, "ok.jpg")
    fd = os.open(os.fsencode(str(root)) + b"/bad\xff.jpg", os.O_CREAT | os.O_WRONLY)
    os.close(fd)
    with caplog.at_level(logging.WARNING, logger="phashfleet.files.listing"):
        assert listing(root) == ["ok.jpg"]
    assert "not valid UTF-8" in caplog.text


def test_fifo_with_an_image_name_is_listed_for_the_worker_to_report(tmp_path):
    root = tmp_path / "r"
    root.mkdir()
    os.mkfifo(root / "pipe.jpg")
    assert listing(root) == ["pipe.jpg"]


def test_uri_naming_one_file_yields_it(tree):
    assert list(iter_source({"uri": str(tree / "notes.txt")}, [str(tree)])) == [str(tree / "notes.txt")]


def test_uri_outside_roots_is_refused_naming_the_uri(tree, tmp_path):
    other = tmp_path / "other"
    other.mkdir()
    with pytest.raises(SourceOutsideRootsError, match="outside_roots") as info:
        iter_source({"uri": f"file://{tree}"}, [str(other)])
    assert str(tree) in str(info.value) and info.value.reason == "SourceOutsideRoots"
    assert isinstance(info.value, SourcePermissionError)
    with pytest.raises(SourceOutsideRootsError):
        iter_source({"uri": str(tree / ".." / ".." / "x")}, [str(tree)])
    with pytest.raises(SourceOutsideRootsError):
        iter_source({"uri": str(tree)}, [])  # no roots: nothing local is allowed


def test_roots_default_to_the_environment(tree, monkeypatch):
    monkeypatch.setenv("PHASHFLEET_ALLOWED_ROOTS", f"/nonexistent{os.pathsep}{tree}")
    assert len(list(iter_source({"uri": str(tree)}))) == 8
    monkeypatch.setenv("PHASHFLEET_ALLOWED_ROOTS", "/nonexistent")
    with pytest.raises(SourceOutsideRootsError):
        iter_source({"uri": str(tree)})


def test_missing_source_and_bad_specs_raise_source_errors(tree):
    with pytest.raises(SourceNotFoundError, match="nope") as info:
        iter_source({"uri": str(tree / "nope")}, [str(tree)])
    assert info.value.reason == "SourceNotFound"
    with pytest.raises(SourceSpecError, match="ftp"):
        iter_source({"uri": "ftp://host/x"}, [])
    with pytest.raises(SourceSpecError, match="uri or a files list"):
        iter_source({"uri": "", "files": []}, [])
    assert issubclass(SourceSpecError, SourceError)


def _unprivileged(fn):
    """Run `fn` as-is, or, when we are root (who reads every folder), in a child that became `nobody`."""
    if not IS_ROOT:
        return fn()
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child drops root, runs the check and reports the outcome through the pipe
        os.close(read_end)
        try:
            os.setgroups([])
            os.setgid(65534)
            os.setuid(65534)
            fn()
            os.write(write_end, b"ok")
        except BaseException as exc:  # noqa: BLE001 - everything must reach the parent
            os.write(write_end, repr(exc).encode()[:4000])
        finally:
            os._exit(0)
    os.close(write_end)
    with os.fdopen(read_end, "rb") as pipe:
        outcome = pipe.read().decode()
    os.waitpid(pid, 0)
    assert outcome == "ok", outcome


def test_unreadable_top_raises_and_unreadable_subfolder_is_reported():
    base = Path(tempfile.mkdtemp(prefix="phashfleet-perm-"))
    base.chmod(0o755)  # pytest's own tmp folders are private to root; nobody must be able to enter this one
    root = base / "r"
    touch(root, "a.jpg", "locked/b.jpg", "z/c.jpg")
    for folder in (root, root / "z"):
        folder.chmod(0o755)
    (root / "locked").chmod(0)

    def check():
        errors = []
        refs = list(iter_source({"uri": str(root)}, [str(root)], on_error=lambda ref, exc: errors.append(ref)))
        assert rel(refs, root) == ["a.jpg", "z/c.jpg"], refs
        assert errors == [str(root / "locked")], errors
        with pytest.raises(SourcePermissionError):
            list(iter_source({"uri": str(root / "locked")}, [str(root)]))

    # Import everything the listing needs while still root: nobody cannot read root's Python install.
    import ctypes  # noqa: F401 - imported for its side effect: loaded while root can still read it

    list(iter_source({"uri": str(root / "z")}, [str(root)]))
    try:
        _unprivileged(check)
    finally:
        (root / "locked").chmod(0o755)
        shutil.rmtree(base)


def test_permission_errors_map_to_source_errors_even_as_root(tmp_path, monkeypatch):
    root = tmp_path / "r"
    touch(root, "a.jpg", "locked/b.jpg", "z/c.jpg")
    real_scandir = os.scandir

    def scandir(path):
        if os.path.basename(path) == "locked":
            raise PermissionError(13, "Permission denied", path)
        return real_scandir(path)

    monkeypatch.setattr(os, "scandir", scandir)
    errors = []
    refs = list(iter_source({"uri": str(root)}, [str(root)], on_error=lambda ref, exc: errors.append(ref)))
    assert rel(refs, root) == ["a.jpg", "z/c.jpg"]
    assert errors == [str(root / "locked")]
    with pytest.raises(SourcePermissionError, match="Permission denied") as info:
        list(iter_source({"uri": str(root / "locked")}, [str(root)]))
    assert info.value.reason == "SourcePermissionDenied"


# --- 50,000 files: streamed, not listed up front -------------------------------------------------

FOLDERS, PER_FOLDER = 50, 1000


@pytest.fixture(scope="module")
def big_tree(tmp_path_factory) -> Path:
    # On tmpfs when there is one: 50,000 creates on a shared disk take 1-40 s, in memory 0.4 s.
    shm = "/dev/shm"
    if os.path.isdir(shm) and os.access(shm, os.W_OK):
        root = Path(tempfile.mkdtemp(prefix="phashfleet-big-", dir=shm))
    else:
        root = tmp_path_factory.mktemp("big")
    for d in range(FOLDERS):
        folder = f"{root}/d{d:02d}"
        os.mkdir(folder)
        for i in range(PER_FOLDER):
            os.close(os.open(f"{folder}/img{i:04d}.jpg", os.O_CREAT | os.O_WRONLY, 0o644))
    yield root
    shutil.rmtree(root, ignore_errors=True)


def test_big_source_yields_before_walking_the_rest(big_tree):
    refs = iter_source({"uri": str(big_tree)}, [str(big_tree)])
    first = next(refs)
    assert first == str(big_tree / "d00" / "img0000.jpg")
    late = big_tree / f"d{FOLDERS - 1:02d}" / "late.jpg"
    late.write_bytes(b"x")  # made after the first item: only a lazy walk can still see it
    try:
        rest = list(refs)
    finally:
        late.unlink()
    assert len(rest) == FOLDERS * PER_FOLDER  # 49,999 of the originals + late.jpg
    assert str(late) in rest


def test_big_source_streams_in_a_fraction_of_a_list_memory(big_tree):
    source = {"uri": str(big_tree)}
    next(iter_source(source, [str(big_tree)]))  # imports and regex caches warm before measuring
    tracemalloc.start()
    try:
        count = sum(1 for _ in iter_source(source, [str(big_tree)]))
        _, stream_peak = tracemalloc.get_traced_memory()
        tracemalloc.reset_peak()
        held = list(iter_source(source, [str(big_tree)]))
        _, list_peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert count == len(held) == FOLDERS * PER_FOLDER
    # One folder (1,000 names) at a time against 50,000 held paths: measured ~150 KB vs ~4 MB.
    assert stream_peak * 10 < list_peak, (stream_peak, list_peak)
