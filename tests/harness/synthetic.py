"""Photo-like synthetic images (sky, shapes, 1/f texture, grain) for tests and benchmarks."""

from __future__ import annotations

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

#: Bumped whenever photo_like's output changes, so cached files are made anew.
VERSION = 3


def _resize(data: np.ndarray, width: int, height: int) -> np.ndarray:
    """Bicubic resize of a float array."""
    return np.asarray(Image.fromarray(data, "F").resize((width, height), Image.Resampling.BICUBIC))


def _octave_noise(
    rng: np.random.Generator, width: int, height: int, octaves: int, falloff: float, cells: int = 3
) -> np.ndarray:
    """Coarse-to-fine noise: each level doubles the resolution and adds weaker, finer detail (1/f-like)."""
    longest = max(width, height)
    gw, gh = max(2, round(cells * width / longest)), max(2, round(cells * height / longest))
    acc = rng.standard_normal((gh, gw), dtype=np.float32)
    amplitude = 1.0
    for _ in range(octaves - 1):
        nw, nh = min(gw * 2, width), min(gh * 2, height)
        if (nw, nh) == (gw, gh):
            break
        amplitude *= falloff
        acc = _resize(acc, nw, nh) + amplitude * rng.standard_normal((nh, nw), dtype=np.float32)
        gw, gh = nw, nh
    return _resize(acc, width, height) if (gw, gh) != (width, height) else acc


def photo_like(width: int, height: int, seed: int) -> Image.Image:
    """Return an RGB image with the statistics of a photo: gradients, edges, texture and noise."""
    rng = np.random.default_rng(seed)
    yy = np.linspace(0.0, 1.0, height, dtype=np.float32)[:, None]
    xx = np.linspace(0.0, 1.0, width, dtype=np.float32)[None, :]

    # Sky above a horizon, ground below, each a smooth colour gradient.
    horizon = rng.uniform(0.25, 0.7)
    sky_top, sky_low = rng.uniform(40, 255, 3), rng.uniform(120, 255, 3)
    ground_near, ground_far = rng.uniform(10, 160, 3), rng.uniform(40, 200, 3)
    t_sky = np.clip(yy / horizon, 0, 1)
    t_ground = np.clip((yy - horizon) / (1 - horizon), 0, 1)
    is_sky = (yy < horizon + 0.02 * np.sin(xx * rng.uniform(3, 12) + rng.uniform(0, 6))).astype(np.float32)
    rgb = np.empty((height, width, 3), np.float32)
    for c in range(3):
        sky = sky_top[c] + (sky_low[c] - sky_top[c]) * t_sky
        ground = ground_far[c] + (ground_near[c] - ground_far[c]) * t_ground
        rgb[..., c] = is_sky * sky + (1 - is_sky) * ground

    # Shapes with soft edges: the edges and blobs that dominate a photo's low frequencies.
    shapes = Image.new("RGB", (width, height))
    mask = Image.new("L", (width, height))
    draw_s, draw_m = ImageDraw.Draw(shapes), ImageDraw.Draw(mask)
    for _ in range(rng.integers(4, 14)):
        colour = tuple(int(v) for v in rng.uniform(0, 255, 3))
        cx, cy = rng.uniform(0, width), rng.uniform(height * 0.2, height)
        rx, ry = rng.uniform(0.03, 0.3) * width, rng.uniform(0.03, 0.3) * height
        box = [cx - rx, cy - ry, cx + rx, cy + ry]
        kind = rng.integers(3)
        if kind == 0:
            draw_s.ellipse(box, fill=colour)
            draw_m.ellipse(box, fill=255)
        elif kind == 1:
            draw_s.rectangle(box, fill=colour)
            draw_m.rectangle(box, fill=255)
        else:
            pts = [(cx + rx * np.cos(a), cy + ry * np.sin(a)) for a in np.sort(rng.uniform(0, 2 * np.pi, 6))]
            draw_s.polygon(pts, fill=colour)
            draw_m.polygon(pts, fill=255)
    blur = max(1.0, width / 1500)
    mask = mask.filter(ImageFilter.BoxBlur(blur))
    shapes = shapes.filter(ImageFilter.BoxBlur(blur))
    alpha = np.asarray(mask, np.float32)[..., None] / 255.0
    rgb = rgb * (1 - alpha) + np.asarray(shapes, np.float32) * alpha

    # Texture at every scale (luma strong, chroma weak), then vignetting and sensor grain.
    luma = _octave_noise(rng, width, height, 14, rng.uniform(0.55, 0.8))
    rgb += luma[..., None] * rng.uniform(10, 30)
    for c in range(3):
        rgb[..., c] += _octave_noise(rng, width, height, 5, 0.6) * rng.uniform(2, 8)
    # Fine detail (foliage, fabric, gravel) in some regions only: it is what makes JPEGs big.
    detail = np.clip(_octave_noise(rng, width, height, 3, 0.5) * 1.5, 0, 1)
    fine = _octave_noise(rng, width, height, 4, 0.8, cells=max(width, height) // 64)
    rgb += (fine * detail)[..., None] * rng.uniform(15, 35)
    r2 = (xx - 0.5) ** 2 + (yy - 0.5) ** 2
    rgb *= (1 - rng.uniform(0.1, 0.4) * r2 * 2)[..., None]
    rgb += rng.uniform(0, 30)  # exposure; some highlights clip, as in real photos
    rgb += rng.standard_normal((height, width, 3), dtype=np.float32) * rng.uniform(1, 4)
    return Image.fromarray(np.clip(rgb + 0.5, 0, 255).astype(np.uint8), "RGB")
