"""What a file is (image, video, or something to skip), from its first bytes and its name."""

from __future__ import annotations

import os
from enum import StrEnum


class Kind(StrEnum):
    """The broad type of a file, as far as hashing cares."""

    IMAGE = "image"
    VIDEO = "video"
    AUDIO = "audio"
    TEXT = "text"
    OTHER = "other"


IMAGE_EXTENSIONS = frozenset(
    [
        ".jpg",
        ".jpeg",
        ".jpe",
        ".jfif",
        ".png",
        ".apng",
        ".gif",
        ".webp",
        ".bmp",
        ".dib",
        ".tif",
        ".tiff",
        ".heic",
        ".heif",
        ".avif",
        ".ico",
        ".ppm",
        ".pgm",
        ".pbm",
        ".pnm",
        ".tga",
        ".jp2",
        ".j2k",
        ".psd",
        ".pcx",
        ".dds",
        ".sgi",
        ".ras",
        ".im",
        ".msp",
    ]
)
VIDEO_EXTENSIONS = frozenset(
    [
        ".mp4",
        ".m4v",
        ".mov",
        ".qt",
        ".mkv",
        ".webm",
        ".avi",
        ".wmv",
        ".flv",
        ".mpg",
        ".mpeg",
        ".m2ts",
        ".mts",
        ".ts",
        ".3gp",
        ".3g2",
        ".ogv",
    ]
)
AUDIO_EXTENSIONS = frozenset(
    [".mp3", ".wav", ".flac", ".ogg", ".oga", ".opus", ".m4a", ".aac", ".wma", ".aif", ".aiff", ".mid", ".midi", ".amr"]
)
TEXT_EXTENSIONS = frozenset(
    [".txt", ".md", ".csv", ".json", ".jsonl", ".xml", ".html", ".htm", ".yaml", ".yml", ".log", ".ini", ".cfg", ".rst"]
)

_IMAGE_BRANDS = (b"heic", b"heix", b"heim", b"heis", b"hevc", b"hevx", b"mif1", b"msf1", b"avif", b"avis")
_AUDIO_BRANDS = (b"M4A ", b"M4B ", b"M4P ", b"F4A ")


def extension(name: str) -> str:
    """The lower-case extension of a path or URL ('' if none)."""
    base = name.rsplit("?", 1)[0].rstrip("/")
    return os.path.splitext(base)[1].lower()


def sniff(head: bytes) -> Kind | None:
    """Recognise a file by its magic bytes; None when they say nothing certain."""
    if head.startswith((b"\xff\xd8\xff", b"\x89PNG\r\n\x1a\n", b"GIF87a", b"GIF89a", b"BM", b"II*\x00", b"MM\x00*")):
        return Kind.IMAGE
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return Kind.IMAGE
    if head[:4] == b"RIFF" and head[8:12] in (b"WAVE", b"AIFF"):
        return Kind.AUDIO
    if head[:4] == b"RIFF" and head[8:12] == b"AVI ":
        return Kind.VIDEO
    if head[4:8] == b"ftyp":
        brand = head[8:12]
        if brand in _IMAGE_BRANDS:
            return Kind.IMAGE
        return Kind.AUDIO if brand in _AUDIO_BRANDS else Kind.VIDEO
    if head.startswith((b"ID3", b"fLaC", b"OggS", b"MThd")) or head[:2] in (b"\xff\xfb", b"\xff\xf3", b"\xff\xf2"):
        return Kind.AUDIO
    if head.startswith(b"\x1a\x45\xdf\xa3"):  # Matroska / WebM
        return Kind.VIDEO
    return None


def classify(name: str, head: bytes) -> Kind:
    """Decide the kind from magic bytes first, then the extension; text if it decodes as UTF-8."""
    found = sniff(head)
    if found is not None:
        return found
    ext = extension(name)
    for kind, names in (
        (Kind.IMAGE, IMAGE_EXTENSIONS),
        (Kind.VIDEO, VIDEO_EXTENSIONS),
        (Kind.AUDIO, AUDIO_EXTENSIONS),
        (Kind.TEXT, TEXT_EXTENSIONS),
    ):
        if ext in names:
            return kind
    if not head or b"\x00" in head:
        return Kind.OTHER
    for cut in range(4):  # the sample may end inside a multi-byte character
        try:
            head[: len(head) - cut].decode("utf-8")
            return Kind.TEXT
        except UnicodeDecodeError:
            continue
    return Kind.OTHER
