"""k-means building blocks on faiss: k-means++ seeding, Lloyd iterations, nearest-centroid search."""

from __future__ import annotations

import contextlib
import logging
import warnings

import numpy as np

log = logging.getLogger(__name__)


def _faiss():
    try:
        import faiss  # noqa: PLC0415
    except ImportError as exc:  # pragma: no cover - faiss-cpu is a dependency
        raise ImportError("faiss is required for this tokenizer: pip install faiss-cpu") from exc
    return faiss


# Below this many multiply-adds per pass, faiss's OpenMP start-up costs far more than the work
# (tens of milliseconds on a busy 2-core machine against microseconds single-threaded).
SMALL_WORK = 20_000_000


@contextlib.contextmanager
def faiss_threads_for(work: float):
    """Runs faiss single-threaded for small problems, with its default thread count otherwise."""
    faiss = _faiss()
    if work >= SMALL_WORK:
        yield
        return
    previous = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(1)
    try:
        yield
    finally:
        faiss.omp_set_num_threads(previous)


def nearest(x: np.ndarray, centroids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(index of the nearest centroid, squared distance to it) for every row of x (exact, L2)."""
    faiss = _faiss()
    x = np.ascontiguousarray(x, dtype=np.float32)
    centroids = np.ascontiguousarray(centroids, dtype=np.float32)
    with faiss_threads_for(float(x.shape[0]) * centroids.shape[0] * x.shape[1]):
        dist, idx = faiss.knn(x, centroids, 1)
    return idx[:, 0].astype(np.int64), np.maximum(dist[:, 0], 0.0)


def kmeans_plus_plus(x: np.ndarray, k: int, rng: np.random.Generator, n_local_trials: int | None = None) -> np.ndarray:
    """Greedy k-means++ seeding (as in Arthur & Vassilvitskii, with a few local trials per step)."""
    n = x.shape[0]
    if n_local_trials is None:
        n_local_trials = 2 + int(np.log(k))
    x64 = x.astype(np.float32)
    sq_norms = np.einsum("ij,ij->i", x64, x64)
    centers = np.empty((k, x.shape[1]), dtype=np.float32)
    first = int(rng.integers(n))
    centers[0] = x[first]
    closest = np.maximum(sq_norms - 2 * x64 @ x64[first] + sq_norms[first], 0)
    potential = closest.sum()
    for c in range(1, k):
        if potential <= 0:  # every point already sits on a center: duplicates fill the rest
            centers[c:] = x[rng.integers(n, size=k - c)]
            break
        rand_vals = rng.random(n_local_trials) * potential
        candidates = np.searchsorted(np.cumsum(closest), rand_vals)
        candidates = np.minimum(candidates, n - 1)
        cand = x64[candidates]
        dist = np.maximum(sq_norms[None, :] - 2 * cand @ x64.T + sq_norms[candidates][:, None], 0)
        new_closest = np.minimum(closest[None, :], dist)
        pots = new_closest.sum(axis=1)
        best = int(np.argmin(pots))
        centers[c] = x[candidates[best]]
        closest, potential = new_closest[best], pots[best]
    return centers


def kmeans(x: np.ndarray, k: int, *, niter: int = 20, seed: int = 0, init: str = "kmeans++",
           nredo: int = 1) -> np.ndarray:
    """k centroids of x. With fewer than k distinct points, the extra centroids repeat points.

    init: "kmeans++" (seeded here, then faiss Lloyd iterations) or "random" (faiss's own).
    """
    faiss = _faiss()
    x = np.ascontiguousarray(x, dtype=np.float32)
    n, d = x.shape
    rng = np.random.default_rng(seed)
    if n <= k:
        extra = x[rng.integers(n, size=k - n)] if k > n else x[:0]
        return np.concatenate([x, extra]).astype(np.float32)
    best, best_obj = None, np.inf
    for redo in range(max(1, nredo)):
        km = faiss.Kmeans(d, k, niter=niter, seed=int(seed) + redo, verbose=False,
                          max_points_per_centroid=max(256, n // k + 1), min_points_per_centroid=1)
        with warnings.catch_warnings(), faiss_threads_for(float(n) * k * d):
            warnings.simplefilter("ignore")
            if init == "kmeans++":
                km.train(x, init_centroids=kmeans_plus_plus(x, k, np.random.default_rng(int(seed) + redo)))
            elif init == "random":
                km.train(x)
            else:
                raise ValueError(f"kmeans init must be 'kmeans++' or 'random', got {init!r}")
        obj = float(km.obj[-1]) if len(km.obj) else 0.0
        if obj < best_obj:
            best, best_obj = km.centroids.copy(), obj
    return best


def capacity(n: int, k: int, cap: float) -> int:
    """Most points one of k clusters may hold under a cap of `cap` x the mean size n / k."""
    return max(1, int(np.ceil(cap * n / k)))


def capacity_assign(x: np.ndarray, centroids: np.ndarray, limit: int) -> np.ndarray:
    """Nearest centroid per row of x with at most `limit` rows per centroid (needs limit x k >= n).

    Rounds of proposals: every unassigned row proposes to its nearest centroid not yet tried;
    each centroid keeps its closest proposers up to its free room and turns the rest away,
    who try their next nearest. Greedy, not the optimal transport plan, but it keeps the
    code's meaning (close rows share a code) while no code can swallow the catalogue.
    """
    n, k = x.shape[0], centroids.shape[0]
    if limit * k < n:
        raise ValueError(f"{k} clusters of at most {limit} points cannot hold {n} points")
    x = np.asarray(x, dtype=np.float32)
    c = np.asarray(centroids, dtype=np.float32)
    dist = np.einsum("ij,ij->i", x, x)[:, None] - 2 * x @ c.T + np.einsum("ij,ij->i", c, c)[None, :]
    preference = np.argsort(dist, axis=1, kind="stable")
    tried = np.zeros(n, dtype=np.int64)
    load = np.zeros(k, dtype=np.int64)
    assign = np.full(n, -1, dtype=np.int64)
    pending = np.arange(n)
    while pending.size:
        choice = preference[pending, tried[pending]]
        order = np.lexsort((dist[pending, choice], choice))  # by centroid, then closest first
        pending, choice = pending[order], choice[order]
        first = np.searchsorted(choice, choice, side="left")
        rank = np.arange(choice.size) - first  # place in its centroid's queue this round
        accepted = rank < (limit - load[choice])
        assign[pending[accepted]] = choice[accepted]
        load += np.bincount(choice[accepted], minlength=k)
        tried[pending[~accepted]] += 1
        pending = pending[~accepted]
    return assign


def balanced_kmeans(x: np.ndarray, centroids: np.ndarray, limit: int, niter: int) -> np.ndarray:
    """Lloyd iterations from `centroids` with capacity-limited assignment; returns the centroids."""
    centroids = np.array(centroids, dtype=np.float32, copy=True)
    for _ in range(niter):
        idx = capacity_assign(x, centroids, limit)
        counts = np.bincount(idx, minlength=len(centroids))
        sums = np.zeros_like(centroids)
        np.add.at(sums, idx, x)
        used = counts > 0
        centroids[used] = sums[used] / counts[used, None]
    return centroids


def level_codes(residual: np.ndarray, centroids: np.ndarray, cap: float = 0.0) -> np.ndarray:
    """One level's codes: the nearest centroid, or with cap > 0 the capacity-limited assignment
    (each code at most cap x the mean share of the rows)."""
    if cap > 0:
        return capacity_assign(residual, centroids, capacity(len(residual), len(centroids), cap))
    return nearest(residual, centroids)[0]


def largest_share(codes: np.ndarray) -> float:
    """Share of the items that hold the most common code of a level."""
    return float(np.bincount(codes).max() / len(codes))


# A level whose most common code holds more than this share of the items has collapsed: its
# codes say almost nothing, and the items it fails to split fall to the disambiguation digit.
COLLAPSED_SHARE = 0.5


def residual_kmeans(x: np.ndarray, sizes: list[int], *, niter: int = 20, seed: int = 0,
                    init: str = "kmeans++", nredo: int = 1,
                    cap: float = 0.0) -> tuple[list[np.ndarray], np.ndarray]:
    """Residual k-means: one codebook per level on what the previous levels left. Returns (codebooks, codes).

    cap > 0 holds every code of a level to at most cap x (items / codebook size) items
    (balanced k-means), for residuals where plain k-means puts one centroid near the origin
    that takes almost every item and the others on single outliers.
    """
    residual = np.array(x, dtype=np.float32, copy=True)
    codebooks, codes = [], []
    for level, k in enumerate(sizes):
        centroids = kmeans(residual, k, niter=niter, seed=seed + 1000 * level, init=init, nredo=nredo)
        if cap > 0:
            centroids = balanced_kmeans(residual, centroids, capacity(len(residual), k, cap), niter)
        idx = level_codes(residual, centroids, cap)
        share = largest_share(idx)
        if share > COLLAPSED_SHARE:
            log.warning("residual k-means level %d collapsed: one of its %d codes holds %.0f%% of the items; "
                        "RQ-KMeans balances it with cap (docs/tokenizers.md)", level + 1, k, 100 * share)
        residual -= centroids[idx]
        codebooks.append(centroids)
        codes.append(idx)
    return codebooks, np.stack(codes, axis=1)


def residual_encode(x: np.ndarray, codebooks: list[np.ndarray], cap: float = 0.0) -> np.ndarray:
    """Codes level by level; cap > 0 assigns under the capacity limits of `residual_kmeans`."""
    residual = np.array(x, dtype=np.float32, copy=True)
    codes = []
    for centroids in codebooks:
        idx = level_codes(residual, centroids, cap)
        residual -= centroids[idx]
        codes.append(idx)
    return np.stack(codes, axis=1)


def residual_decode(codes: np.ndarray, codebooks: list[np.ndarray]) -> np.ndarray:
    out = np.zeros((codes.shape[0], codebooks[0].shape[1]), dtype=np.float32)
    for level, centroids in enumerate(codebooks):
        out += centroids[codes[:, level]]
    return out


def refine_residual_codebooks(x: np.ndarray, codebooks: list[np.ndarray], codes: np.ndarray,
                              iters: int, cap: float = 0.0) -> np.ndarray:
    """Joint refinement of greedy residual k-means; returns the new codes (codebooks change in place).

    Each pass moves every level's centroids to the mean of what the *other* levels leave of
    the items assigned to them (the least-squares optimum for fixed codes), then re-encodes
    greedily. Greedy level-by-level fitting never revisits level l once level l+1 exists;
    this does, and lowers the quantisation error at a small cost. `cap` re-encodes under the
    capacity limits the codes were fitted with.
    """
    x = np.asarray(x, dtype=np.float32)
    for _ in range(iters):
        recon = residual_decode(codes, codebooks)
        for level, book in enumerate(codebooks):
            target = x - (recon - book[codes[:, level]])
            counts = np.bincount(codes[:, level], minlength=len(book))
            used = counts > 0
            order = np.argsort(codes[:, level], kind="stable")
            starts = np.concatenate([[0], np.cumsum(counts)[:-1]])[used]
            sums = np.add.reduceat(target[order], starts, axis=0)  # per used code, in code order
            new = book.copy()
            new[used] = (sums / counts[used, None]).astype(np.float32)
            recon += new[codes[:, level]] - book[codes[:, level]]
            codebooks[level] = new
        codes = residual_encode(x, codebooks, cap)
    return codes
