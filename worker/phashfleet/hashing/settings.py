"""What to compute for each file: the algorithm, its size, exact or fast, and the limits."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from phashfleet.hashing.algorithms import ALGORITHMS
from phashfleet.job.spec import spec_bounds, spec_default, whash_sizes

#: The CRD's bounds of spec.hashSize.
MIN_HASH_SIZE, MAX_HASH_SIZE = spec_bounds("hashSize")
#: spec.maxRetries when a job's stored settings predate it (the CRD's default).
DEFAULT_MAX_RETRIES: int = spec_default("maxRetries")


def max_retries_of(job_settings: Mapping[str, Any]) -> int:
    """The job's spec.maxRetries from its stored settings (jobspec.hash_settings())."""
    return int(job_settings.get("max_retries", DEFAULT_MAX_RETRIES))


@dataclass(frozen=True)
class Settings:
    """Hashing settings shared by every file of a job (or of one CLI run).

    Parameters:
      algorithm(str): phash | dhash | ahash | whash | colorhash.
      hash_size(int): 4..32; a power of two for whash; ``binbits`` = hash_size * 3 // 8 for colorhash.
      exact(bool): bit-identical to imagehash when true; the fast decode path when false.
      timeout_seconds(float): per-file limit, enforced by killing the hashing process.
      allowed_roots(tuple): local directories a file:// or plain path may resolve into.
      max_retries(int): extra reads of a remote file after a transient error (HTTP 503, a reset connection).
    """

    # A CLI run's defaults are a job's: the CRD's.
    algorithm: str = spec_default("algorithm")
    hash_size: int = spec_default("hashSize")
    exact: bool = spec_default("exact")
    timeout_seconds: float = float(spec_default("timeoutSeconds"))
    allowed_roots: tuple[str, ...] = field(default_factory=tuple)
    max_retries: int = DEFAULT_MAX_RETRIES

    @classmethod
    def from_job(cls, job_settings: Mapping[str, Any], allowed_roots: tuple[str, ...]) -> Settings:
        """The Settings of a job's stored settings dict; raises ValueError for ones no file can be hashed with."""
        return cls(
            algorithm=job_settings["algorithm"],
            hash_size=job_settings["hash_size"],
            exact=job_settings["exact"],
            timeout_seconds=job_settings["timeout_seconds"],
            allowed_roots=allowed_roots,
            max_retries=max_retries_of(job_settings),
        )

    def __post_init__(self) -> None:
        if self.algorithm not in ALGORITHMS:
            raise ValueError(f"algorithm must be one of {', '.join(ALGORITHMS)}, not {self.algorithm!r}")
        if not MIN_HASH_SIZE <= self.hash_size <= MAX_HASH_SIZE:
            raise ValueError(f"hash_size must be {MIN_HASH_SIZE}..{MAX_HASH_SIZE}, not {self.hash_size}")
        if self.algorithm == "whash" and self.hash_size not in whash_sizes():
            sizes = ", ".join(map(str, whash_sizes()))
            raise ValueError(f"whash needs a power-of-two hash_size ({sizes}), not {self.hash_size}")
        if not self.timeout_seconds > 0:
            raise ValueError(f"timeout_seconds must be positive, not {self.timeout_seconds}")
        if self.max_retries < 0:
            raise ValueError(f"max_retries must be >= 0, not {self.max_retries}")
        object.__setattr__(self, "allowed_roots", tuple(self.allowed_roots))
