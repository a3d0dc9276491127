"""Video: hash FRAMES frames evenly spaced over the duration (needs the optional PyAV extra)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, BinaryIO

from PIL import Image

from phashfleet.hashing.errors import FileFailed, FileSkipped

if TYPE_CHECKING:  # PyAV is an optional extra, imported when a video comes
    from av.container import InputContainer
    from av.video.frame import VideoFrame
    from av.video.stream import VideoStream

#: Frames sampled per video, at (i + 0.5) / FRAMES of its duration.
FRAMES = 5


@dataclass
class VideoHashes:
    """Per-frame hashes of a video and its frame size."""

    frames: list[str]
    width: int
    height: int

    @property
    def representative(self) -> str:
        """The middle sample's hash: the record's ``hash`` field."""
        return self.frames[len(self.frames) // 2]


def hash_video(file: BinaryIO, hash_frame: Callable[[Image.Image], str]) -> VideoHashes:
    """Decode FRAMES evenly spaced frames of a video stream and hash each with ``hash_frame``."""
    try:
        import av
    except ImportError:
        raise FileSkipped("no_video_support", "install the 'video' extra (PyAV) to hash videos") from None
    try:
        container = av.open(file, "r")
    except (av.error.FFmpegError, ValueError, OSError) as exc:
        raise FileFailed("decode_error", f"cannot open video: {exc}") from None
    with container:
        if not container.streams.video:
            raise FileSkipped("not_an_image", "media file without a video stream (audio?)")
        stream = container.streams.video[0]
        try:
            images = _sample(container, stream)
        except (av.error.FFmpegError, ValueError, OSError) as exc:
            raise FileFailed("decode_error", f"cannot decode video: {exc}") from None
        if not images:
            raise FileFailed("decode_error", "video has no decodable frames")
        return VideoHashes([hash_frame(img) for img in images], images[0].width, images[0].height)


def _sample(container: InputContainer, stream: VideoStream) -> list[Image.Image]:
    """The first frame at or after each sample time; falls back to decoding every frame."""
    duration = _duration_seconds(container, stream)
    if duration and stream.time_base:
        images = []
        for i in range(FRAMES):
            target = duration * (i + 0.5) / FRAMES
            container.seek(int(target / stream.time_base), stream=stream, backward=True)
            frame = _first_at_or_after(container, stream, target)
            if frame is not None:
                images.append(_image(frame))
        if len(images) == FRAMES:
            return images
        container.seek(0)
    frames = [_image(frame) for frame in container.decode(stream)]
    if len(frames) <= FRAMES:
        return frames
    return [frames[int(len(frames) * (i + 0.5) / FRAMES)] for i in range(FRAMES)]


def _image(frame: VideoFrame) -> Image.Image:
    """The decoded frame as a Pillow image."""
    image: Image.Image = frame.to_image()  # type: ignore[no-untyped-call]  # PyAV's stub leaves to_image untyped
    return image


def _duration_seconds(container: InputContainer, stream: VideoStream) -> float | None:
    """The stream's duration in seconds, or None if the container does not say."""
    if stream.duration and stream.time_base:
        return float(stream.duration * stream.time_base)
    if container.duration:
        return container.duration / 1_000_000
    return None


def _first_at_or_after(container: InputContainer, stream: VideoStream, seconds: float) -> VideoFrame | None:
    """Decode from the current seek point to the first frame whose time is >= ``seconds``."""
    last = None
    for frame in container.decode(stream):
        last = frame
        if frame.time is not None and frame.time + 1e-6 >= seconds:
            return frame
    return last
