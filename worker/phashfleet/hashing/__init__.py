"""The hashing core: decode a file, compute its perceptual hash, return a result record."""

from phashfleet.hashing.algorithms import ALGORITHMS
from phashfleet.hashing.hash_file import hash_ref
from phashfleet.hashing.pool import HashPool, hash_many, hash_many_timed
from phashfleet.hashing.settings import Settings

__all__ = ["ALGORITHMS", "HashPool", "Settings", "hash_many", "hash_many_timed", "hash_ref"]
