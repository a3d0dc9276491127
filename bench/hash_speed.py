"""Benchmark: imagehash vs phash-fleet (exact and fast) per core, on generated photo-like images.

    python bench/hash_speed.py            # 12 MP / 1 MP JPEG, PNG, WebP, TIFF; a few minutes
    python bench/hash_speed.py --small    # a CI-sized run
    python bench/hash_speed.py --json bench/out/hash_speed.json

Images are generated once (smooth gradients, shapes, texture at every scale, grain) and cached
under .cache/bench/. Every method runs in this one process, interleaved image by image, so the
ratios hold even on a busy machine; times are the median of the rounds.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import imagehash
import PIL
from PIL import Image

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "worker"))

from phashfleet.hashing import Settings, hash_ref  # noqa: E402
from phashfleet.hashing.algorithms import colorhash_binbits  # noqa: E402
from phashfleet.hashing.synthetic import VERSION, photo_like  # noqa: E402

CACHE = ROOT / ".cache" / "bench"
PHOTO_SIZES = [(4032, 3024), (4000, 3000), (3024, 4032), (4096, 2731)]

#: name -> (sizes cycled over, file format, save options, images in a full run, in a --small run)
SETS = {
    "jpeg-12mp": (PHOTO_SIZES, "JPEG", {"quality": 92}, 40, 2),
    "jpeg-1mp": ([(1152, 864), (864, 1152)], "JPEG", {"quality": 90}, 40, 3),
    "png-12mp": (PHOTO_SIZES[:1], "PNG", {"compress_level": 1}, 3, 1),
    "webp-12mp": (PHOTO_SIZES[:1], "WEBP", {"quality": 90, "method": 2}, 3, 1),
    "tiff-12mp": (PHOTO_SIZES[:1], "TIFF", {}, 2, 0),
}
EXT = {"JPEG": "jpg", "PNG": "png", "WEBP": "webp", "TIFF": "tif"}


def image_set(name: str, count: int, small: bool) -> list[Path]:
    """Paths of ``count`` cached images of one set, generating any that are missing."""
    sizes, fmt, options, _, _ = SETS[name]
    if small:
        sizes = [(max(64, w // 4), max(64, h // 4)) for w, h in sizes]
    opts = "-".join(f"{k}{v}" for k, v in sorted(options.items()))
    paths = []
    for seed in range(count):
        width, height = sizes[seed % len(sizes)]
        path = CACHE / f"photo-v{VERSION}-{width}x{height}-s{seed}-{opts or 'default'}.{EXT[fmt]}"
        if not path.exists():
            CACHE.mkdir(parents=True, exist_ok=True)
            tmp = path.with_suffix(".tmp")
            photo_like(width, height, seed).save(tmp, fmt, **options)
            tmp.rename(path)
        paths.append(path)
    return paths


def time_one(fn, path: Path) -> tuple[float, object]:
    """Seconds one call takes, and what it returned."""
    start = time.perf_counter()
    value = fn(path)
    return time.perf_counter() - start, value


def run_set(name: str, paths: list[Path], rounds: int, algorithm: str, hash_size: int) -> dict:
    """Time imagehash, ours exact and ours fast on every image; compare the hashes."""
    roots = (str(CACHE),)
    exact = Settings(algorithm=algorithm, hash_size=hash_size, exact=True, allowed_roots=roots)
    fast = Settings(algorithm=algorithm, hash_size=hash_size, exact=False, allowed_roots=roots)
    ref_fn = {
        "phash": imagehash.phash, "dhash": imagehash.dhash, "ahash": imagehash.average_hash,
        "whash": imagehash.whash, "colorhash": lambda im, n: imagehash.colorhash(im, binbits=colorhash_binbits(n)),
    }[algorithm]
    methods = {
        "imagehash": lambda p: str(ref_fn(Image.open(p), hash_size)),
        "exact": lambda p: hash_ref(str(p), exact)["hash"],
        "fast": lambda p: hash_ref(str(p), fast)["hash"],
    }
    for fn in methods.values():  # warm up: imports, lazy plugin and weight set-up are not per image
        fn(paths[0])
    times = {m: [[] for _ in paths] for m in methods}
    hashes = {m: [None] * len(paths) for m in methods}
    for _ in range(rounds):
        for i, path in enumerate(paths):
            for method, fn in methods.items():
                seconds, value = time_one(fn, path)
                times[method][i].append(seconds)
                hashes[method][i] = value
    per_image = {m: [statistics.median(t) for t in times[m]] for m in methods}
    rate = {m: len(paths) / sum(per_image[m]) for m in methods}

    def distance(a: str, b: str) -> int:
        return bin(int(a, 16) ^ int(b, 16)).count("1")

    fast_d = [distance(a, b) for a, b in zip(hashes["fast"], hashes["imagehash"], strict=True)]
    exact_d = [distance(a, b) for a, b in zip(hashes["exact"], hashes["imagehash"], strict=True)]
    return {
        "set": name,
        "images": len(paths),
        "megapixels": round(statistics.mean(Image.open(p).width * Image.open(p).height for p in paths) / 1e6, 1),
        "mean_file_mb": round(statistics.mean(p.stat().st_size for p in paths) / 1e6, 2),
        "images_per_s": {m: round(v, 2) for m, v in rate.items()},
        "ms_per_image": {m: round(1000 / v, 1) for m, v in rate.items()},
        "ratio_exact": round(rate["exact"] / rate["imagehash"], 2),
        "ratio_fast": round(rate["fast"] / rate["imagehash"], 2),
        "exact_identical_pct": round(100 * exact_d.count(0) / len(paths), 1),
        "fast_identical_pct": round(100 * fast_d.count(0) / len(paths), 1),
        "fast_max_bits": max(fast_d),
        "fast_bits": fast_d,
    }


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark and print a table (and JSON with --json)."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--small", action="store_true", help="tiny images and few of them (CI)")
    parser.add_argument("--json", metavar="OUT", help="also write the results as JSON here")
    parser.add_argument("--rounds", type=int, default=None, help="timing rounds per image (default 3; 1 with --small)")
    parser.add_argument("--algorithm", default="phash", choices=["phash", "dhash", "ahash", "whash", "colorhash"])
    parser.add_argument("--hash-size", type=int, default=8)
    parser.add_argument("--sets", default=",".join(SETS), help="comma-separated: " + ", ".join(SETS))
    parser.add_argument("--min-span", type=int, default=None,
                        help="override the fast path's MIN_SPAN (10 makes 12 MP photos decode at 1/8)")
    parser.add_argument("--no-recheck", action="store_true",
                        help="do not decode close phash calls again (shows what the check costs and buys)")
    args = parser.parse_args(argv)
    from phashfleet.hashing import fast  # noqa: PLC0415

    if args.min_span:
        fast.MIN_SPAN = args.min_span
    fast.RECHECK = not args.no_recheck
    rounds = args.rounds or (1 if args.small else 3)

    results = []
    header = (f"{'set':10s} {'n':>3s} {'MP':>5s} {'MB':>5s} | {'imagehash/s':>11s} {'exact/s':>8s} {'fast/s':>8s} | "
              f"{'exact x':>7s} {'fast x':>7s} | {'ident%':>6s} {'maxbits':>7s}")
    print(f"hash_speed: {args.algorithm} hash_size={args.hash_size}, fast MIN_SPAN={fast.MIN_SPAN}, "
          f"recheck={'on' if fast.RECHECK else 'off'}, one core, "
          f"{rounds} round(s), median per image")
    print(header)
    print("-" * len(header))
    for name in args.sets.split(","):
        count = SETS[name][4] if args.small else SETS[name][3]
        if not count:
            continue
        result = run_set(name, image_set(name, count, args.small), rounds, args.algorithm, args.hash_size)
        results.append(result)
        rate = result["images_per_s"]
        print(f"{name:10s} {result['images']:3d} {result['megapixels']:5.1f} {result['mean_file_mb']:5.2f} | "
              f"{rate['imagehash']:11.2f} {rate['exact']:8.2f} {rate['fast']:8.2f} | "
              f"{result['ratio_exact']:7.2f} {result['ratio_fast']:7.2f} | "
              f"{result['fast_identical_pct']:6.1f} {result['fast_max_bits']:7d}", flush=True)
    if args.json:
        out = {
            "date": datetime.date.today().isoformat(),
            "command": "python bench/hash_speed.py " + " ".join(argv if argv is not None else sys.argv[1:]),
            "machine": {"cpu_count": os.cpu_count(), "python": platform.python_version(),
                        "pillow": PIL.__version__, "imagehash": imagehash.__version__},
            "algorithm": args.algorithm, "hash_size": args.hash_size, "rounds": rounds, "min_span": fast.MIN_SPAN,
            "recheck": fast.RECHECK,
            "results": results,
        }
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(out, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
