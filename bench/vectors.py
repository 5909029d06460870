"""Synthetic embedding vectors for the scale benchmarks, in two distributions.

``uniform``: random normal vectors, normalised: no structure at all. Every point is about as
far from every other (cosine ≈ 0 ± 0.05 in 384 dims), which is the worst case of an IVF or
HNSW index: its recall@10 against an exact scan was 0.16-0.18 in earlier runs, whatever the
filter, so recall could not tell a correct plan from a wrong one.

``clustered`` (the default of the search-plan benchmarks): a seeded Gaussian mixture of low
intrinsic dimension, as real embeddings are clustered by topic and vary along far fewer
directions than they have dimensions. ``clusters`` centres are drawn on the unit sphere of a
``latent_dim``-dimensional space (default 24; the benchmarks default to one centre per
``ROWS_PER_CLUSTER`` rows); a point is its centre (chosen uniformly) plus Gaussian noise of
norm ≈ ``spread`` (per latent dimension ``spread / sqrt(latent_dim)``), mapped into ``dim``
dimensions by a fixed random orthonormal basis, plus isotropic noise of norm ≈
``ambient_noise`` in all ``dim`` dimensions, normalised. A full-rank isotropic mixture would
not do: inside one cluster every point is then about as far from every other (the same
concentration of distances as ``uniform``), and a query's nearest neighbours are as arbitrary
as in random data. Here they are its neighbours in the latent space, which an index can find,
and a reader of a small share of the rows still has readable rows near each query. Queries
are drawn from the same mixture (fresh points, not stored ones).

Vectors are produced ``batch`` rows at a time from one seeded generator, so a million
384-dimensional float32 vectors (1.5 GB) are written straight into the caller's array with
no float64 copy of the whole.
"""

from __future__ import annotations

import argparse
from collections.abc import Iterator
from typing import Literal

import numpy as np

Distribution = Literal["clustered", "uniform"]
DISTRIBUTIONS: tuple[Distribution, ...] = ("clustered", "uniform")
DEFAULT_SPREAD = 0.75
DEFAULT_LATENT_DIM = 24
DEFAULT_AMBIENT_NOISE = 0.1
# Rows per cluster by default: topics of ~1,000 chunks.
ROWS_PER_CLUSTER = 1_000


def add_arguments(ap: argparse.ArgumentParser, rows: str) -> None:
    """The ``--vectors``, ``--clusters`` and ``--spread`` options of a scale benchmark."""
    ap.add_argument(
        "--vectors",
        choices=DISTRIBUTIONS,
        help="vector distribution (bench/vectors.py); default clustered with --plans, uniform otherwise",
    )
    ap.add_argument("--clusters", type=int, help=f"centres of the clustered distribution (default: {rows} / 1,000)")
    ap.add_argument("--spread", type=float, default=DEFAULT_SPREAD, help="noise norm around a centre (clustered)")


def source_for(args: argparse.Namespace, dim: int, rows: int) -> VectorSource:
    """The vectors those options ask for (clustered by default when timing the plans)."""
    if args.vectors is None:
        args.vectors = "clustered" if args.plans else "uniform"
    return VectorSource(args.vectors, dim, clusters=args.clusters or default_clusters(rows), spread=args.spread)


def default_clusters(rows: int) -> int:
    """The benchmarks' default number of centres for ``rows`` vectors."""
    return max(1, rows // ROWS_PER_CLUSTER)


class VectorSource:
    """Seeded vectors of one distribution; ``clusters`` and ``spread`` apply to ``clustered``."""

    def __init__(
        self,
        distribution: Distribution,
        dim: int,
        *,
        clusters: int = 1024,
        spread: float = DEFAULT_SPREAD,
        latent_dim: int = DEFAULT_LATENT_DIM,
        ambient_noise: float = DEFAULT_AMBIENT_NOISE,
        seed: int = 7,
    ) -> None:
        if distribution not in DISTRIBUTIONS:
            raise ValueError(f"unknown vector distribution {distribution!r}; one of {', '.join(DISTRIBUTIONS)}")
        self.distribution = distribution
        self.dim = dim
        self.clusters = clusters
        self.spread = spread
        self.latent_dim = min(latent_dim, dim)
        self.ambient_noise = ambient_noise
        self.rng = np.random.default_rng(seed)
        self.centres = _normalised(self.rng.standard_normal((clusters, self.latent_dim), dtype=np.float32))
        basis, _ = np.linalg.qr(self.rng.standard_normal((dim, self.latent_dim)))
        self.basis = basis.T.astype(np.float32)  # latent_dim x dim, orthonormal rows

    def sample(self, n: int) -> np.ndarray:
        """``n`` normalised float32 vectors of this distribution."""
        noise = self.rng.standard_normal((n, self.dim), dtype=np.float32)
        if self.distribution == "uniform":
            return _normalised(noise)
        noise *= np.float32(self.ambient_noise / np.sqrt(self.dim))
        latent = self.rng.standard_normal((n, self.latent_dim), dtype=np.float32)
        latent *= np.float32(self.spread / np.sqrt(self.latent_dim))
        latent += self.centres[self.rng.integers(0, self.clusters, n)]
        noise += latent @ self.basis
        return _normalised(noise)

    def batches(self, n: int, batch: int) -> Iterator[np.ndarray]:
        """``n`` vectors, ``batch`` at a time (the last batch may be shorter)."""
        for start in range(0, n, batch):
            yield self.sample(min(batch, n - start))

    def describe(self) -> str:
        """One line for a benchmark's JSON: what the vectors are."""
        if self.distribution == "uniform":
            return f"synthetic: random normal, normalised, {self.dim} dims"
        return (
            f"synthetic: Gaussian mixture of {self.clusters} centres on the unit sphere of a "
            f"{self.latent_dim}-d latent space, noise norm {self.spread} around a centre, mapped to "
            f"{self.dim} dims by a random orthonormal basis, plus isotropic noise of norm "
            f"{self.ambient_noise}, normalised"
        )


def _normalised(v: np.ndarray) -> np.ndarray:
    v /= np.linalg.norm(v, axis=1, keepdims=True)
    return v
