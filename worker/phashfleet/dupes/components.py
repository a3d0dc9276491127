"""Union-find over numpy arrays: merge whole edge arrays at once, no Python loop per edge."""

from __future__ import annotations

from typing import Any

import numpy as np

_FIND_STEPS = 8  # pointer chases on the queried nodes before compressing the whole forest


def index_dtype(n: int) -> type[np.signedinteger[Any]]:
    """The smallest of int32 and int64 that holds every index below ``n`` (halves the memory up to 2^31)."""
    return np.int32 if n <= np.iinfo(np.int32).max else np.int64


class DisjointSets:
    """Disjoint sets of ``0..n-1``; every root is the smallest member of its set."""

    def __init__(self, n: int) -> None:
        self.parent = np.arange(n, dtype=index_dtype(n))

    def find(self, nodes: np.ndarray) -> np.ndarray:
        """Roots of ``nodes`` (compressing their paths)."""
        parent = self.parent
        roots: np.ndarray = parent[nodes]
        for _ in range(_FIND_STEPS):
            up = parent[roots]
            if np.array_equal(up, roots):
                break
            roots = up
        else:
            self.compress()
            roots = self.parent[nodes]
        self.parent[nodes] = roots
        return roots

    def union(self, a: np.ndarray, b: np.ndarray) -> None:
        """Merge the sets of each pair ``(a[i], b[i])``."""
        ra, rb = self.find(a), self.find(b)
        while True:
            differ = ra != rb
            if not differ.any():
                return
            ra, rb = ra[differ], rb[differ]
            low, high = np.minimum(ra, rb), np.maximum(ra, rb)
            # Each hooked root points to a smaller one, so no cycle forms and roots stay minimal.
            np.minimum.at(self.parent, high, low)
            ra, rb = self.find(low), self.find(high)

    def compress(self) -> np.ndarray:
        """Point every node straight at its root; return the root of each node."""
        parent = self.parent
        while True:
            up = parent[parent]
            if np.array_equal(up, parent):
                break
            parent = up
        self.parent = parent
        return parent


def reduce_edges(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Replace an edge list by one with the same components and fewer edges than distinct nodes."""
    nodes, local = np.unique(np.concatenate([a, b]), return_inverse=True)
    sets = DisjointSets(nodes.size)
    sets.union(local[: a.size], local[a.size :])
    roots = sets.compress()
    moved = np.flatnonzero(roots != np.arange(nodes.size))
    return nodes[moved], nodes[roots[moved]]
