"""What to compute for each file: the algorithm, its size, exact or fast, and the limits."""

from __future__ import annotations

from dataclasses import dataclass, field

from phashfleet.hashing.algorithms import ALGORITHMS

MIN_HASH_SIZE = 4
MAX_HASH_SIZE = 32


@dataclass(frozen=True)
class Settings:
    """Hashing settings shared by every file of a job (or of one CLI run).

    Parameters:
      algorithm(str): phash | dhash | ahash | whash | colorhash.
      hash_size(int): 4..32; a power of two for whash; ``binbits`` = hash_size * 3 // 8 for colorhash.
      exact(bool): bit-identical to imagehash when true; the fast decode path when false.
      timeout_seconds(float): per-file limit, enforced by killing the hashing process.
      allowed_roots(tuple): local directories a file:// or plain path may resolve into.
    """

    algorithm: str = "phash"
    hash_size: int = 8
    exact: bool = False
    timeout_seconds: float = 60.0
    allowed_roots: tuple[str, ...] = field(default_factory=tuple)

    def __post_init__(self) -> None:
        if self.algorithm not in ALGORITHMS:
            raise ValueError(f"algorithm must be one of {', '.join(ALGORITHMS)}, not {self.algorithm!r}")
        if not MIN_HASH_SIZE <= self.hash_size <= MAX_HASH_SIZE:
            raise ValueError(f"hash_size must be {MIN_HASH_SIZE}..{MAX_HASH_SIZE}, not {self.hash_size}")
        if self.algorithm == "whash" and self.hash_size & (self.hash_size - 1):
            raise ValueError(f"whash needs a power-of-two hash_size (4, 8, 16, 32), not {self.hash_size}")
        if not self.timeout_seconds > 0:
            raise ValueError(f"timeout_seconds must be positive, not {self.timeout_seconds}")
        object.__setattr__(self, "allowed_roots", tuple(self.allowed_roots))
