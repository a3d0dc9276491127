"""Build the harness's container images with buildah (no registry, no Docker daemon), cached by their inputs."""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from harness import tools

CACHE = tools.CACHE / "images"
ROOT = tools.ROOT
HERE = Path(__file__).resolve().parent
RUNC = "/usr/sbin/runc"  # buildah prefers crun when installed, and crun refuses this host's hybrid cgroups
REPO = "localhost/phash-fleet"
PYTHON_BASE = "docker.io/library/python:3.11-slim-bookworm"  # what the Dockerfiles' FROM names
SUITE, MIRROR = "bookworm", "http://deb.debian.org/debian"
BASE_PACKAGES = ("python3", "python3-venv", "python-is-python3", "ca-certificates")
BASE_JUNK = ("var/lib/apt/lists", "var/cache/apt", "var/log", "usr/share/doc", "usr/share/man", "usr/share/info")
BASE_ENV = ("LANG=C.UTF-8", "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin")
BASE_RECIPE = "debootstrap minbase, junk emptied v2"
REDIS_SCRIPT = """set -eu
# Keep the package scripts from starting a redis-server inside the build.
printf '#!/bin/sh\\nexit 101\\n' > /usr/sbin/policy-rc.d && chmod 0755 /usr/sbin/policy-rc.d
apt-get update -qq
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends redis-server redis-tools wget
rm -rf /usr/sbin/policy-rc.d /var/lib/apt/lists/* /var/cache/apt/*.bin /var/log/apt /var/log/dpkg.log
groupadd --system --gid 10001 redis-user
useradd --system --uid 10001 --gid 10001 --home-dir /data --no-create-home --shell /usr/sbin/nologin redis-user
mkdir -p /data && chown 10001:10001 /data
"""
REDIS_CONFIG = (
    "--user",
    "10001:10001",
    "--workingdir",
    "/data",
    "--port",
    "6379/tcp",
    "--cmd",
    json.dumps(["redis-server", "--dir", "/data"]),
)
PAUSE_CFLAGS = ("-static", "-O2", "-s", "-Wall", "-Werror")
# The host's CA bundle (it holds the TLS proxy's CA) is bind-mounted over the image's own for RUN steps only.
# Both Debian's pip and pip>=24.2 trust that file, so no pip.conf is needed (a -v of one leaves an empty file).
CA_BUNDLE = "/etc/ssl/certs/ca-certificates.crt"
# v2: the context's mtimes follow content (v1 archives could hold stale code from buildah's COPY cache).
APP_RECIPE = "buildah bud --layers, CA bundle mounted for RUN, content-stamped context v2"
NAMES = ("base", "worker", "operator", "redis", "pause", "coredns")


@dataclass(frozen=True)
class Image:
    """One image built here: its full reference and the archive `ctr images import` reads."""

    name: str  # e.g. "localhost/phash-fleet/worker:3f9a0c1d2e4b"
    archive: Path  # a docker-archive tar
    seconds: float = field(default=0.0, compare=False)  # time spent building it now; 0 when it was cached


def _stderr(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _digest(*parts: str | bytes) -> str:
    h = hashlib.sha256()
    for part in parts:
        data = part.encode() if isinstance(part, str) else part
        h.update(len(data).to_bytes(8, "big") + data)
    return h.hexdigest()


def _context_files(root: Path) -> list[Path]:
    """The files .dockerignore lets into the build context, in a stable order."""
    files = [root / "pyproject.toml", root / "README.md", root / "crds" / "phashjobs.phashfleet.io.yaml"]
    for top in ("worker", "operator"):
        for dirpath, dirnames, filenames in os.walk(root / top):
            dirnames[:] = sorted(d for d in dirnames if d != "__pycache__" and not d.endswith(".egg-info"))
            files += [Path(dirpath, f) for f in sorted(filenames) if not f.endswith((".pyc", ".egg-info"))]
    return files


def image_keys(root: Path = ROOT) -> dict[str, str]:
    """The cache key of each image: a hash of everything that goes into it (the build context read from root)."""
    base = _digest("base", BASE_RECIPE, SUITE, MIRROR, *BASE_PACKAGES, *BASE_JUNK, *BASE_ENV)
    context = [x for f in _context_files(root) for x in (str(f.relative_to(root)), f.read_bytes())]
    keys = {"base": base}
    for name in ("worker", "operator"):
        keys[name] = _digest(name, APP_RECIPE, base, (root / f"Dockerfile.{name}").read_bytes(), *context)
    keys["redis"] = _digest("redis", base, REDIS_SCRIPT, *REDIS_CONFIG)
    keys["pause"] = _digest("pause", (HERE / "pause.c").read_bytes(), *PAUSE_CFLAGS)
    # CoreDNS is keyed by its pinned version (tools/coredns/go.mod): the binary is rebuilt only with it.
    keys["coredns"] = _digest("coredns", tools.GO_TOOLS["coredns"].version())
    return keys


def _snapshot(dest: Path) -> Path:
    """Copy the build context and the Dockerfiles to dest, each file's mtime set by its content.

    buildah 1.28 reuses a cached COPY layer unless a source file's mtime is newer than the layer, whatever
    its content: a checkout's mtimes say nothing (a clone or a pull can leave a changed file older than the
    layer, and the image shipped stale code). So a file keeps the mtime first given to its content here, and
    new content gets the current time: unchanged files hit the cache, changed ones never do.
    """
    record_path = CACHE / "context-mtimes.json"
    record = json.loads(record_path.read_text()) if record_path.exists() else {}
    now = time.time()
    dockerfiles = [ROOT / ".dockerignore", ROOT / "Dockerfile.worker", ROOT / "Dockerfile.operator"]
    for path in [*_context_files(ROOT), *dockerfiles]:
        relative = str(path.relative_to(ROOT))
        target = dest / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(path, target)
        digest = hashlib.sha256(target.read_bytes()).hexdigest()
        seen = record.get(relative)
        if not seen or seen[0] != digest:
            record[relative] = seen = [digest, now]
        os.utime(target, (seen[1], seen[1]))
    for folder, _, files in sorted(os.walk(dest), key=lambda entry: -len(entry[0])):  # a folder is as new as its files
        stamps = [os.stat(os.path.join(folder, name)).st_mtime for name in files] or [0.0]
        os.utime(folder, (max(stamps), max(stamps)))
    record_path.write_text(json.dumps(record))
    return dest


def _images(keys: Mapping[str, str]) -> dict[str, Image]:
    return {name: Image(f"{REPO}/{name}:{keys[name][:12]}", CACHE / f"{name}-{keys[name][:12]}.tar") for name in NAMES}


def _env() -> dict[str, str]:
    """buildah's environment: its own storage and registries config under CACHE, not the host's."""
    storage, registries = CACHE / "storage.conf", CACHE / "registries.conf"
    storage.write_text(
        f'[storage]\ndriver = "overlay"\ngraphroot = "{CACHE / "storage"}"\nrunroot = "{CACHE / "run"}"\n'
    )
    registries.write_text('unqualified-search-registries = ["docker.io"]\nshort-name-mode = "permissive"\n')
    return {**os.environ, "CONTAINERS_STORAGE_CONF": str(storage), "CONTAINERS_REGISTRIES_CONF": str(registries)}


class _Builder:
    """Runs the build commands of one image, its output going to a log file under CACHE/logs."""

    def __init__(self, image: Image):
        (CACHE / "logs").mkdir(parents=True, exist_ok=True)
        self.log = CACHE / "logs" / f"{image.archive.stem}.log"
        self.log.write_text("")
        self.env = _env()

    def run(self, *cmd: str | Path, timeout: float = 1800) -> str:
        """Run a command; return its stdout, or raise with the tail of its output."""
        with self.log.open("a") as log:
            log.write(f"$ {' '.join(map(str, cmd))}\n")
            log.flush()
            proc = subprocess.run(
                [str(c) for c in cmd], stdout=subprocess.PIPE, stderr=log, text=True, env=self.env, timeout=timeout
            )
            log.write(proc.stdout)
        if proc.returncode:
            tail = "".join(self.log.read_text().splitlines(keepends=True)[-30:])
            raise RuntimeError(f"{cmd[0]} {cmd[1]} failed ({proc.returncode}), log {self.log}:\n{tail}")
        return proc.stdout.strip()

    def commit(self, container: str, name: str, *config: str) -> None:
        """Apply `buildah config` options to a working container and commit it as `name` (docker format)."""
        try:
            if config:
                self.run("buildah", "config", *config, container)
            self.run("buildah", "commit", "--rm", "--format", "docker", container, name)
        except BaseException:
            subprocess.run(["buildah", "rm", container], env=self.env, capture_output=True)
            raise

    def export(self, image: Image) -> None:
        """Write the image's docker-archive atomically, and drop older archives of the same image."""
        partial = image.archive.with_suffix(".partial")
        partial.unlink(missing_ok=True)
        self.run("buildah", "push", image.name, f"docker-archive:{partial}:{image.name}")
        partial.rename(image.archive)
        name = image.archive.stem.rsplit("-", 1)[0]
        for old in CACHE.glob(f"{name}-*.tar"):
            if old != image.archive:
                old.unlink()
                subprocess.run(
                    ["buildah", "rmi", f"{REPO}/{name}:{old.stem.rsplit('-', 1)[1]}"], env=self.env, capture_output=True
                )

    def ensure_local(self, image: Image) -> None:
        """Make sure buildah's storage holds an image that so far may only exist as an archive."""
        probe = subprocess.run(["buildah", "inspect", "--type", "image", image.name], env=self.env, capture_output=True)
        if probe.returncode:
            self.run("buildah", "pull", f"docker-archive:{image.archive}")


def _unmount_under(path: Path) -> None:
    """Unmount whatever a failed debootstrap left mounted inside `path` (deepest first)."""
    mounts = [line.split()[1] for line in Path("/proc/mounts").read_text().splitlines()]
    for point in sorted((m for m in mounts if m.startswith(f"{path}/")), key=len, reverse=True):
        subprocess.run(["umount", "-l", point], check=False)


def _build_base(b: _Builder, image: Image, work: Path) -> None:
    rootfs = work / "rootfs"
    b.run("debootstrap", "--variant=minbase", f"--include={','.join(BASE_PACKAGES)}", SUITE, rootfs, MIRROR)
    for junk in BASE_JUNK:
        for item in (rootfs / junk).rglob("*"):
            if not item.is_dir() or item.is_symlink():
                item.unlink()
    for host_file in ("etc/resolv.conf", "etc/hostname"):  # copied from this machine by debootstrap
        (rootfs / host_file).unlink(missing_ok=True)
    b.run("tar", "-C", rootfs, "--numeric-owner", "-cf", work / "rootfs.tar", ".")
    container = b.run("buildah", "from", "scratch")
    b.run("buildah", "add", container, work / "rootfs.tar", "/")
    # containerd, unlike buildah run, adds no default PATH: the image must carry one.
    b.commit(container, image.name, *(x for env in BASE_ENV for x in ("--env", env)), "--cmd", '["python3"]')


def _build_app(b: _Builder, image: Image, base: Image, context: Path, dockerfile: Path) -> None:
    b.ensure_local(base)
    b.run("buildah", "tag", base.name, PYTHON_BASE)
    b.run(
        "buildah",
        "bud",
        "--layers",
        "--pull=never",
        "--format",
        "docker",
        "--runtime",
        RUNC,
        "--network",
        "host",
        "-v",
        f"{CA_BUNDLE}:{CA_BUNDLE}:ro",
        "-f",
        dockerfile,
        "-t",
        image.name,
        context,
    )


def _build_redis(b: _Builder, image: Image, base: Image) -> None:
    b.ensure_local(base)
    container = b.run("buildah", "from", "--pull=never", base.name)
    try:
        b.run("buildah", "run", "--runtime", RUNC, "--network", "host", container, "--", "sh", "-c", REDIS_SCRIPT)
    except BaseException:
        subprocess.run(["buildah", "rm", container], env=b.env, capture_output=True)
        raise
    b.commit(container, image.name, *REDIS_CONFIG)


def _build_pause(b: _Builder, image: Image, work: Path) -> None:
    b.run("gcc", *PAUSE_CFLAGS, "-o", work / "pause", HERE / "pause.c")
    container = b.run("buildah", "from", "scratch")
    b.run("buildah", "copy", "--chmod", "0755", container, work / "pause", "/pause")
    b.commit(container, image.name, "--entrypoint", '["/pause"]', "--user", "65535:65535")


def _build(name: str, images: Mapping[str, Image], log: Callable[[str], None]) -> Image:
    """Build one image and write its archive; returns it with the time it took."""
    started, image = time.monotonic(), images[name]
    work = Path(tempfile.mkdtemp(prefix=f"{name}-", dir=CACHE))
    try:
        if name in ("worker", "operator"):
            # Build a copy, keyed by the copy: an edit made during the build cannot slip in under the old key.
            context = _snapshot(work / "context")
            image = _images(image_keys(context))[name]
            if image.archive.exists():
                return image
        log(f"building image {image.name} ...")
        b = _Builder(image)
        if name == "base":
            _build_base(b, image, work)
        elif name == "redis":
            _build_redis(b, image, images["base"])
        elif name == "pause":
            _build_pause(b, image, work)
        elif name == "coredns":
            _build_coredns(b, image)
        else:
            _build_app(b, image, images["base"], context, context / f"Dockerfile.{name}")
        b.export(image)
        if name == "base":  # a new base orphans every layer cached on the old one (the old base is untagged)
            subprocess.run(["buildah", "rmi", "--prune"], env=b.env, capture_output=True)
    finally:
        _unmount_under(work)
        shutil.rmtree(work, ignore_errors=True)
    image = Image(image.name, image.archive, time.monotonic() - started)
    log(f"built image {image.name} in {image.seconds:.1f} s")
    return image


def _build_coredns(b: _Builder, image: Image) -> None:
    container = b.run("buildah", "from", "scratch")
    b.run("buildah", "copy", "--chmod", "0755", container, tools.find("coredns"), "/coredns")
    b.commit(container, image.name, "--entrypoint", '["/coredns"]')


def build_images(log: Callable[[str], None] = _stderr, without: tuple[str, ...] = ()) -> dict[str, Image]:
    """Return the images (base, worker, operator, redis, pause, coredns), building those not cached yet
    (except the ones named in `without`)."""
    CACHE.mkdir(parents=True, exist_ok=True)
    images = _images(image_keys())
    wanted = [name for name in NAMES if name not in without]
    if all(images[name].archive.exists() for name in wanted):
        return images
    with (CACHE / ".lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # another test process may be building the same images
        for name in wanted:
            if not images[name].archive.exists():
                images[name] = _build(name, images, log)
    return images


def import_images(ctr_address: str, images: Mapping[str, Image] | Iterable[Image]) -> None:
    """Import into containerd's k8s.io namespace each image it does not hold yet, under exactly its name."""
    todo = list(images.values()) if isinstance(images, Mapping) else list(images)
    ctr = ["ctr", "--address", ctr_address, "-n", "k8s.io"]

    def present() -> set[str]:
        out = subprocess.run([*ctr, "images", "ls", "-q"], capture_output=True, text=True, check=True, timeout=60)
        return set(out.stdout.split())

    have = present()
    for image in todo:
        if image.name not in have:
            subprocess.run(
                [*ctr, "images", "import", "--all-platforms", str(image.archive)],
                check=True,
                capture_output=True,
                timeout=600,
            )
    missing = [i.name for i in todo if i.name not in present()]
    if missing:
        raise RuntimeError(f"ctr imported the archives but does not list {missing}")


def _ref(image: Image) -> dict[str, str]:
    repository, _, tag = image.name.rpartition(":")
    return {"repository": repository, "tag": tag, "pullPolicy": "Never"}


def chart_values(images: Mapping[str, Image]) -> dict:
    """Helm values that point the chart at the local images (never pulled)."""
    return {name: {"image": _ref(images[name])} for name in ("operator", "worker", "redis")}


def pause_image_name(images: Mapping[str, Image]) -> str:
    """The pause image's reference, for containerd's sandbox_image."""
    return images["pause"].name


def main(argv: list[str]) -> int:
    """`build [--without NAME...]`: build (or find cached) the images and print name, archive and build time."""
    if argv[:1] != ["build"] or (len(argv) > 1 and argv[1] != "--without"):
        print("usage: python -m harness.node.images build [--without NAME...]", file=sys.stderr)
        return 2
    started = time.monotonic()
    images = build_images(without=tuple(argv[2:]))
    for image in images.values():
        print(f"{image.name:45} {image.archive}  {image.seconds:7.1f} s")
    print(f"total {time.monotonic() - started:.2f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
