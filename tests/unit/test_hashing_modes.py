"""Image modes and containers: alpha on white, 16-bit scaled, first GIF frame, HEIC/AVIF, video frames."""

from __future__ import annotations

import os
from pathlib import Path

import imagehash
import numpy as np
import pytest
from PIL import Image

from harness.ci import missing
from harness.synthetic import photo_like
from phashfleet.hashing import Settings, hash_ref
from phashfleet.hashing.decode import BACKGROUND
from phashfleet.hashing.video import FRAMES


def need(module: str):
    """Import an optional extra's module: a skip locally, a failure in CI."""
    try:
        return __import__(module)
    except ImportError:
        missing(f"{module} (an optional extra the tests install) is not installed")


@pytest.fixture
def photo() -> Image.Image:
    return photo_like(160, 120, seed=21)


def hashed(path: Path, exact: bool = True, algorithm: str = "phash") -> dict:
    return hash_ref(str(path), Settings(algorithm=algorithm, exact=exact, allowed_roots=(str(path.parent),)))


def on_white(image: Image.Image) -> Image.Image:
    base = Image.new("RGBA", image.size, BACKGROUND + (255,))
    return Image.alpha_composite(base, image.convert("RGBA")).convert("RGB")


@pytest.mark.parametrize("exact", [True, False])
def test_alpha_is_flattened_on_white(tmp_path, photo, exact):
    rgba = photo.convert("RGBA")
    alpha = np.zeros((120, 160), np.uint8)
    alpha[:, 80:] = 255
    rgba.putalpha(Image.fromarray(alpha))
    rgba.save(tmp_path / "half.png")
    expected = str(imagehash.phash(on_white(rgba)))
    assert hashed(tmp_path / "half.png", exact)["hash"] == expected
    assert expected != str(imagehash.phash(Image.open(tmp_path / "half.png")))  # the hidden colour would count

    grey = rgba.convert("LA")
    grey.save(tmp_path / "grey.png")
    assert hashed(tmp_path / "grey.png", exact)["hash"] == str(imagehash.phash(on_white(grey).convert("L")))


def test_palette_transparency_is_flattened(tmp_path, photo):
    palette = photo.quantize(32)
    palette.info["transparency"] = 0
    palette.save(tmp_path / "t.gif", transparency=0)
    opened = Image.open(tmp_path / "t.gif")
    assert hashed(tmp_path / "t.gif")["hash"] == str(imagehash.phash(on_white(opened.convert("RGBA"))))


def test_16_bit_grey_is_scaled_not_clipped(tmp_path, photo):
    wide = (np.asarray(photo.convert("L"), np.uint16) * 257).astype(np.uint16)
    Image.fromarray(wide).save(tmp_path / "deep.png")
    assert Image.open(tmp_path / "deep.png").mode.startswith("I")
    record = hashed(tmp_path / "deep.png")
    assert record["hash"] == str(imagehash.phash(photo.convert("L")))


def test_first_frame_of_an_animation(tmp_path, photo):
    other = photo_like(160, 120, seed=99)
    photo.save(tmp_path / "anim.gif", save_all=True, append_images=[other], duration=100)
    first = Image.open(tmp_path / "anim.gif")
    expected = str(imagehash.phash(first))
    first.seek(1)
    assert str(imagehash.phash(first)) != expected
    assert hashed(tmp_path / "anim.gif")["hash"] == expected


def test_heic_with_the_heif_extra(tmp_path, photo):
    need("pillow_heif")
    photo.save(tmp_path / "photo.heic", format="HEIF", quality=90)
    record = hashed(tmp_path / "photo.heic")
    assert record["status"] == "ok", record
    assert record["hash"] == str(imagehash.phash(Image.open(tmp_path / "photo.heic")))


def test_avif(tmp_path, photo):
    photo.save(tmp_path / "photo.avif", quality=90)
    record = hashed(tmp_path / "photo.avif")
    assert record["status"] == "ok", record
    assert (record["width"], record["height"]) == (160, 120)


def test_video_hashes_evenly_spaced_frames(tmp_path):
    av = need("av")
    path = tmp_path / "clip.mp4"
    frames = [photo_like(96, 64, seed=s) for s in range(20)]
    with av.open(str(path), "w") as container:
        stream = container.add_stream("mpeg4", rate=10)
        stream.width, stream.height, stream.pix_fmt = 96, 64, "yuv420p"
        for image in frames:
            for packet in stream.encode(av.VideoFrame.from_image(image)):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    record = hashed(path, exact=False)
    assert record["status"] == "ok", record
    assert (record["width"], record["height"]) == (96, 64)
    assert len(record["frames"]) == FRAMES and record["hash"] == record["frames"][FRAMES // 2]
    assert len(set(record["frames"])) > 1  # different moments of the clip, not one frame five times


def test_broken_video_fails_and_audio_only_is_skipped(tmp_path):
    av = need("av")
    (tmp_path / "broken.mp4").write_bytes(b"\x00\x00\x00\x18ftypisom" + os.urandom(500))
    assert hashed(tmp_path / "broken.mp4")["reason"].startswith("decode_error:")
    path = tmp_path / "tone.m4a"
    with av.open(str(path), "w", format="mp4") as container:
        stream = container.add_stream("aac", rate=8000)
        frame = av.AudioFrame.from_ndarray(np.zeros((1, 1024), np.float32), format="fltp", layout="mono")
        frame.sample_rate = 8000
        for packet in stream.encode(frame):
            container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    record = hashed(path)
    assert record["status"] == "skipped" and record["reason"].startswith("not_an_image:"), record
