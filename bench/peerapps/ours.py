"""The peers' second task body: our fast hash (`hash_ref`) with the Settings our fleet's job gets."""

from __future__ import annotations

import os

from common import our_settings
from phashfleet.hashing import hash_ref

SETTINGS = our_settings(os.environ["PHASHFLEET_ALLOWED_ROOTS"].split(os.pathsep))


def fast_phash(path: str) -> str:
    """The perceptual hash of one image by phash-fleet's fast path, as hex; raises when it fails."""
    record = hash_ref(path, SETTINGS)
    if record["status"] != "ok":
        raise RuntimeError(f"{path}: {record['status']} {record.get('reason')}")
    return str(record["hash"])
