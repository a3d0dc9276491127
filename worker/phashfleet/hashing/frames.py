"""Length-prefixed pickles on a pipe: a hashing process writes one per file, its parent reads many per read."""

from __future__ import annotations

import os
import pickle
import struct
from typing import Any

_HEADER = struct.Struct("!I")
#: Bytes asked for per read: a pipe's whole default buffer, so a read takes everything that is there.
READ_BYTES = 1 << 16


def write_frame(fd: int, value: Any) -> None:
    """Write one value to `fd` in a single frame (all of it, whatever a write call takes at once)."""
    payload = pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL)
    data = memoryview(_HEADER.pack(len(payload)) + payload)
    while data:
        data = data[os.write(fd, data) :]


class FrameReader:
    """Collects bytes from a pipe and hands back the whole frames among them, in order."""

    def __init__(self) -> None:
        self._buffer = bytearray()

    def read(self, fd: int) -> list[Any] | None:
        """Read what `fd` has (blocks only if it has nothing); return the frames now whole, None at end of file."""
        data = os.read(fd, READ_BYTES)
        if not data:
            return None
        buffer = self._buffer
        buffer += data
        values, at = [], 0
        while len(buffer) - at >= _HEADER.size:
            (size,) = _HEADER.unpack_from(buffer, at)
            end = at + _HEADER.size + size
            if end > len(buffer):
                break
            values.append(pickle.loads(buffer[at + _HEADER.size : end]))
            at = end
        del buffer[:at]
        return values
