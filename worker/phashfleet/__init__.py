"""phash-fleet: perceptual image hashes computed by a Dramatiq worker fleet."""

__version__ = "0.1.0"
