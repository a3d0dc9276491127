"""Benchmark: imagehash vs phash-fleet (exact and fast) per core, on real and generated photos.

    python bench/hash_speed.py            # real 12 MP JPEGs, generated JPEG/PNG/WebP/TIFF; minutes
    python bench/hash_speed.py --small    # a CI-sized run
    python bench/hash_speed.py --json bench/out/hash_speed.json

Real photos are the corpus of tests/harness/photos.py (photos shipped in scikit-image's and
scikit-learn's wheels, and their recompressions, crops, rescales and tilings); the fast path's bit
distances from imagehash on all of it are reported per algorithm. Generated images (smooth
gradients, shapes, texture at every scale, grain) are cached under .cache/bench/. Every method
runs in this one process, interleaved image by image, so the ratios hold even on a busy machine;
times are the median of the rounds. For JPEG sets a bare 1/8-scale grey decode (the fast path's
first step: libjpeg reads all the Huffman-coded data) is timed beside them, as a share of
imagehash's time and of the fast path's; `full%` is the share of images the fast path decoded
whole because its estimate had more bits in doubt than it accepts.
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
sys.path[:0] = [str(ROOT / "worker"), str(ROOT / "tests")]

from harness import photos
from harness.synthetic import VERSION, photo_like
from phashfleet.hashing import Settings, hash_ref
from phashfleet.hashing.algorithms import colorhash_binbits
from phashfleet.hashing.fast import GREY_DRAFT_MODE, fast_hash

CACHE = ROOT / ".cache" / "bench"
PHOTO_SIZES = [(4032, 3024), (4000, 3000), (3024, 4032), (4096, 2731)]

#: name -> (sizes cycled over, file format, save options, images in a full run, in a --small run)
SETS = {
    # The real-photo corpus's 12 MP JPEGs: colour photos (what cameras give), grey ones, and the
    # mirrored tilings (a worst case: near-ties everywhere, mostly hashed exactly).
    "real-12mp": ("12mp:RGB", "JPEG", {}, 10, 0),
    "real-12mp-grey": ("12mp:L", "JPEG", {}, 9, 0),
    "real-tiled-12mp": ("tiled-12mp:RGB", "JPEG", {}, 10, 0),
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
    if isinstance(sizes, str):  # "kind:mode" of the real-photo corpus
        kind, mode = sizes.split(":")
        return [v.path for v in photos.corpus() if v.kind == kind and Image.open(v.path).mode == mode][:count]
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


def decode_eighth(path: Path) -> None:
    """Decode a JPEG at 1/8 scale in grey, as the fast path's first step does: libjpeg still reads every
    Huffman-coded block, but computes only each block's mean. No decoder built on libjpeg reads a JPEG faster."""
    with Image.open(path) as image:
        image.draft(GREY_DRAFT_MODE, (max(1, image.width // 8), max(1, image.height // 8)))
        image.load()


def decoded_in_full(path: Path, algorithm: str, hash_size: int) -> bool:
    """True when the fast path's estimate had too many bits in doubt, so the image was decoded whole."""
    reopened = []

    def reopen() -> Image.Image:
        reopened.append(True)
        return Image.open(path)

    with Image.open(path) as image:
        fast_hash(image, algorithm, hash_size, reopen)
    return bool(reopened)


def run_set(name: str, paths: list[Path], rounds: int, algorithm: str, hash_size: int) -> dict:
    """Time imagehash, ours exact and ours fast (and a bare 1/8 JPEG decode) on every image; compare the hashes."""
    roots = tuple(sorted({str(p.parent) for p in paths}))
    exact = Settings(algorithm=algorithm, hash_size=hash_size, exact=True, allowed_roots=roots)
    fast = Settings(algorithm=algorithm, hash_size=hash_size, exact=False, allowed_roots=roots)
    ref_fn = {
        "phash": imagehash.phash,
        "dhash": imagehash.dhash,
        "ahash": imagehash.average_hash,
        "whash": imagehash.whash,
        "colorhash": lambda im, n: imagehash.colorhash(im, binbits=colorhash_binbits(n)),
    }[algorithm]
    methods = {
        "imagehash": lambda p: str(ref_fn(Image.open(p), hash_size)),
        "exact": lambda p: hash_ref(str(p), exact)["hash"],
        "fast": lambda p: hash_ref(str(p), fast)["hash"],
    }
    jpeg = SETS[name][1] == "JPEG" or all(p.suffix.lower() in (".jpg", ".jpeg") for p in paths)
    if jpeg:
        methods["decode_1_8"] = decode_eighth
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
    decode = rate.pop("decode_1_8", None)
    full = sum(decoded_in_full(p, algorithm, hash_size) for p in paths)

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
        # The fast path's floor: a bare 1/8-scale decode (reading the Huffman data), as a share of each time.
        "decode_1_8_ms_per_image": round(1000 / decode, 2) if decode else None,
        "decode_1_8_pct_of_imagehash": round(100 * rate["imagehash"] / decode, 1) if decode else None,
        "decode_1_8_pct_of_fast": round(100 * rate["fast"] / decode, 1) if decode else None,
        # Images whose estimate had more bits in doubt than the fast path accepts: decoded whole, hashed exactly.
        "full_decode_pct": round(100 * full / len(paths), 1),
    }


#: imagehash's functions with their own defaults, as the distances are measured at hashSize 8.
IMAGEHASH = {
    "phash": imagehash.phash,
    "dhash": imagehash.dhash,
    "ahash": imagehash.average_hash,
    "whash": imagehash.whash,
    "colorhash": imagehash.colorhash,
}


def bits_apart(a: str, b: str) -> int:
    """Hamming distance of two hex hashes."""
    return bin(int(a, 16) ^ int(b, 16)).count("1")


def distribution(variants: list, algorithms: list[str]) -> list[dict]:
    """Per algorithm: how many of the fast path's hashes are 0, 1, 2, 3 and 4+ bits from imagehash's."""
    roots = tuple(sorted({str(v.path.parent) for v in variants}))
    found = {a: [] for a in algorithms}
    for variant in variants:
        with Image.open(variant.path) as image:
            image.load()
            expected = {a: str(IMAGEHASH[a](image)) for a in algorithms}
        for algorithm in algorithms:
            got = hash_ref(str(variant.path), Settings(algorithm=algorithm, allowed_roots=roots))["hash"]
            found[algorithm].append((bits_apart(got, expected[algorithm]), variant.path.name))
    rows = []
    for algorithm, pairs in found.items():
        bits = [b for b, _ in pairs]
        rows.append(
            {
                "algorithm": algorithm,
                "files": len(bits),
                "bits": {str(k): bits.count(k) for k in range(4)} | {"4+": sum(b >= 4 for b in bits)},
                "identical_pct": round(100 * bits.count(0) / len(bits), 1),
                "max_bits": max(bits),
                "off": sorted((name, b) for b, name in pairs if b),
            }
        )
    return rows


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark and print a table (and JSON with --json)."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--small", action="store_true", help="tiny images and few of them (CI)")
    parser.add_argument("--json", metavar="OUT", help="also write the results as JSON here")
    parser.add_argument("--rounds", type=int, default=None, help="timing rounds per image (default 3; 1 with --small)")
    parser.add_argument("--algorithm", default="phash", choices=["phash", "dhash", "ahash", "whash", "colorhash"])
    parser.add_argument("--hash-size", type=int, default=8)
    parser.add_argument("--sets", default=",".join(SETS), help="comma-separated: " + ", ".join(SETS))
    parser.add_argument(
        "--min-span",
        type=int,
        default=None,
        help="override the fast path's MIN_SPAN (10 makes 12 MP photos decode at 1/8)",
    )
    parser.add_argument("--no-distances", action="store_true", help="skip the real-photo bit distances")
    args = parser.parse_args(argv)
    from phashfleet.hashing import fast

    if args.min_span:
        fast.MIN_SPAN = args.min_span
    rounds = args.rounds or (1 if args.small else 3)

    results = []
    header = (
        f"{'set':15s} {'n':>3s} {'MP':>5s} {'MB':>5s} | {'imagehash/s':>11s} {'exact/s':>8s} {'fast/s':>8s} | "
        f"{'exact x':>7s} {'fast x':>7s} | {'ident%':>6s} {'maxbits':>7s} {'full%':>5s} | "
        f"{'1/8 ms':>6s} {'%ihash':>6s} {'%fast':>6s}"
    )
    distances = []
    if not args.no_distances:
        # --small: the small variants of four photos (brick and page are the fine-texture ones).
        variants = (
            photos.corpus(large=False, photos=("brick", "page", "chelsea", "china")) if args.small else photos.corpus()
        )
        print(
            f"fast path vs imagehash (its defaults, hashSize 8) on {len(variants)} real-photo files ({photos.CACHE}):"
        )
        print(
            f"{'algorithm':10s} {'files':>5s} | {'0':>4s} {'1':>4s} {'2':>4s} {'3':>4s} {'4+':>4s} | "
            f"{'ident%':>6s} {'max':>3s}"
        )
        for row in distribution(variants, ["phash", "dhash", "ahash", "whash", "colorhash"]):
            distances.append(row)
            b = row["bits"]
            print(
                f"{row['algorithm']:10s} {row['files']:5d} | {b['0']:4d} {b['1']:4d} {b['2']:4d} {b['3']:4d} "
                f"{b['4+']:4d} | {row['identical_pct']:6.1f} {row['max_bits']:3d}",
                flush=True,
            )
        print()
    print(
        f"hash_speed: {args.algorithm} hash_size={args.hash_size}, fast MIN_SPAN={fast.MIN_SPAN}, "
        "one core, "
        f"{rounds} round(s), median per image"
    )
    print(header)
    print("-" * len(header))
    for name in args.sets.split(","):
        count = SETS[name][4] if args.small else SETS[name][3]
        if not count:
            continue
        result = run_set(name, image_set(name, count, args.small), rounds, args.algorithm, args.hash_size)
        results.append(result)
        rate = result["images_per_s"]
        print(
            f"{name:15s} {result['images']:3d} {result['megapixels']:5.1f} {result['mean_file_mb']:5.2f} | "
            f"{rate['imagehash']:11.2f} {rate['exact']:8.2f} {rate['fast']:8.2f} | "
            f"{result['ratio_exact']:7.2f} {result['ratio_fast']:7.2f} | "
            f"{result['fast_identical_pct']:6.1f} {result['fast_max_bits']:7d} {result['full_decode_pct']:5.1f} | "
            + (
                f"{result['decode_1_8_ms_per_image']:6.1f} {result['decode_1_8_pct_of_imagehash']:6.1f} "
                f"{result['decode_1_8_pct_of_fast']:6.1f}"
                if result["decode_1_8_ms_per_image"]
                else f"{'-':>6s} {'-':>6s} {'-':>6s}"
            ),
            flush=True,
        )
    print(
        "full%: images decoded whole because their estimate had more bits in doubt than the fast path "
        "accepts; 1/8 ms: a bare 1/8-scale grey JPEG decode (libjpeg reads all the Huffman-coded data), "
        "%ihash and %fast: that decode's time as a share of imagehash's and of the fast path's"
    )
    if args.json:
        out = {
            "date": datetime.date.today().isoformat(),
            "command": "python bench/hash_speed.py " + " ".join(argv if argv is not None else sys.argv[1:]),
            "machine": {
                "cpu_count": os.cpu_count(),
                "python": platform.python_version(),
                "pillow": PIL.__version__,
                "imagehash": imagehash.__version__,
            },
            "algorithm": args.algorithm,
            "hash_size": args.hash_size,
            "rounds": rounds,
            "min_span": fast.MIN_SPAN,
            "results": results,
            "real_photo_distances": distances,
        }
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(out, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
