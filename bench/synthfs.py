"""A synthetic fsspec filesystem, `synthetic://nN/`, that lists N image names and serves a tiny PNG for each.

`synthetic://n1000000/` holds folders `d0000`, `d0001`, ... of FILES_PER_DIR files each, named
`f0000000.png` and so on; nothing is stored anywhere: listings and file bytes are computed from
the path, so a million-file job costs no disk and the benchmark measures the control path.
Other processes find the protocol through an `fsspec.specs` entry point (see `plugin_dir`).
"""

from __future__ import annotations

import io
import re
from functools import lru_cache
from pathlib import Path

from fsspec.spec import AbstractFileSystem

PROTOCOL = "synthetic"
FILES_PER_DIR = 1000
#: Distinct tiny images served (file i gets variant i % VARIANTS): enough for distinct hashes.
VARIANTS = 64
_PATH = re.compile(r"^n(\d+)(?:/d(\d{4,})(?:/f(\d{7,})\.png)?)?/?$")


def root_uri(n: int) -> str:
    """The URL of a synthetic source with `n` files."""
    return f"{PROTOCOL}://n{n}/"


@lru_cache(maxsize=VARIANTS)
def tiny_png(variant: int) -> bytes:
    """A 16x16 greyscale PNG with a pattern that depends on `variant`."""
    from PIL import Image

    fx, fy = variant % 7 + 1, (variant // 7 + 1) * 5
    pixels = bytes(((x * fx + y * fy) * 17) % 256 for y in range(16) for x in range(16))
    out = io.BytesIO()
    Image.frombytes("L", (16, 16), pixels).save(out, "PNG")
    return out.getvalue()


class SyntheticFileSystem(AbstractFileSystem):
    """Read-only; `ls` of the root gives the folders, `ls` of a folder its files, `open` a tiny PNG."""

    protocol = PROTOCOL
    root_marker = ""

    def __init__(self, *args, **kwargs) -> None:
        kwargs.pop("use_listings_cache", None)
        super().__init__(*args, **kwargs)

    @staticmethod
    def _parse(path: str) -> tuple[int, int | None, int | None]:
        match = _PATH.match(path.strip("/"))
        if not match:
            raise FileNotFoundError(path)
        n, folder, index = (int(g) if g is not None else None for g in match.groups())
        folders = -(-n // FILES_PER_DIR)
        if folder is not None and folder >= folders:
            raise FileNotFoundError(path)
        if index is not None and not (index // FILES_PER_DIR == folder and index < n):
            raise FileNotFoundError(path)
        return n, folder, index

    def _file_entry(self, n: int, index: int) -> dict:
        folder = index // FILES_PER_DIR
        return {"name": f"n{n}/d{folder:04d}/f{index:07d}.png", "size": len(tiny_png(index % VARIANTS)), "type": "file"}

    def ls(self, path: str, detail: bool = True, **kwargs) -> list:
        """The folders of the root, or the files of a folder."""
        n, folder, index = self._parse(self._strip_protocol(path))
        if index is not None:
            entries = [self._file_entry(n, index)]
        elif folder is None:
            entries = [
                {"name": f"n{n}/d{k:04d}", "size": 0, "type": "directory"} for k in range(-(-n // FILES_PER_DIR))
            ]
        else:
            entries = [
                self._file_entry(n, i) for i in range(folder * FILES_PER_DIR, min(n, (folder + 1) * FILES_PER_DIR))
            ]
        return entries if detail else [e["name"] for e in entries]

    def info(self, path: str, **kwargs) -> dict:
        """A file's size, or a folder."""
        stripped = self._strip_protocol(path).strip("/")
        n, folder, index = self._parse(stripped)
        if index is not None:
            return self._file_entry(n, index)
        return {"name": stripped, "size": 0, "type": "directory"}

    def cat_file(self, path: str, start: int | None = None, end: int | None = None, **kwargs) -> bytes:
        """A file's bytes, without the generic open (a worker reads each file this way; it is most of its cost)."""
        n, folder, index = self._parse(self._strip_protocol(path))
        if index is None:
            raise IsADirectoryError(path)
        return tiny_png(index % VARIANTS)[start:end]

    def _open(self, path: str, mode: str = "rb", **kwargs):
        if "r" not in mode:
            raise PermissionError(f"{PROTOCOL}:// is read-only")
        n, folder, index = self._parse(self._strip_protocol(path))
        if index is None:
            raise IsADirectoryError(path)
        return io.BytesIO(tiny_png(index % VARIANTS))


def plugin_dir(folder: Path) -> Path:
    """Write a minimal dist-info with an `fsspec.specs` entry point for `synthetic` under `folder`.

    With `folder` and bench/ on PYTHONPATH, fsspec in any process (a worker, say) resolves
    `synthetic://` to this module without any code change.
    """
    info = folder / "phashfleet_bench_synthfs-0.0.dist-info"
    info.mkdir(parents=True, exist_ok=True)
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: phashfleet-bench-synthfs\nVersion: 0.0\n")
    (info / "entry_points.txt").write_text(f"[fsspec.specs]\n{PROTOCOL} = synthfs:SyntheticFileSystem\n")
    return folder
