"""Hierarchical k-means (EAGER, after DSI's semantic identifiers).

The catalogue is split by k-means into `branching` clusters; every cluster holding more than
`branching` items is split again, recursively, until each leaf cluster holds at most
`branching` items. An item's code is the path of cluster indices from the root to its leaf,
followed by its position inside the leaf.

Layout (fixed length, so every generative model sees the same number of levels):
    [c_1, ..., c_d, PAD, ..., PAD, position]
Path levels hold cluster indices 0..k-1 and the pad code k (leaves shallower than the deepest
one are padded up to the maximum depth D); the last level holds the position 0..k-1 within
the leaf. Padded codes stay unique: a cluster index is either a leaf or split at every node,
never both, so a PAD can never stand where another item has a real cluster index with the
same prefix. Only items that k-means cannot separate (identical embeddings, or a leaf at
`max_depth`) can share a code; the generic disambiguation digit then tells them apart.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .base import TOKENIZERS, Tokenizer, TokenizerConfig, unit_rows
from .kmeans import kmeans, nearest


@dataclass
class HKMeansConfig(TokenizerConfig):
    # A cold-start item lands in a leaf beside fitted items and takes its nearest one's position,
    # so it needs the disambiguation digit: keep the level even when no fitted items collide.
    dedup: str = "always"
    branching: int = 256  # k: children per split and the largest leaf
    max_depth: int = 8  # split levels at most; deeper clusters become (over-full) leaves
    niter: int = 20
    init: str = "kmeans++"
    normalize: bool = False


@TOKENIZERS.register("hkmeans")
class HKMeansTokenizer(Tokenizer):
    name = "hkmeans"
    Config = HKMeansConfig

    def __init__(self, config=None):
        super().__init__(config)
        # Tree: node i's children are rows node_offsets[i]:node_offsets[i+1] of child_centroids;
        # child_target >= 0 is the node it splits into, < 0 is leaf (-target - 1).
        self.child_centroids: np.ndarray | None = None
        self.child_target: np.ndarray | None = None
        self.node_offsets: np.ndarray | None = None
        self.depth: int = 0  # D: path levels in the layout
        # Leaf members, used to place an embedding at a position inside its leaf.
        self.member_embeddings: np.ndarray | None = None
        self.member_leaf: np.ndarray | None = None
        self.member_position: np.ndarray | None = None

    def _prep(self, x):
        if self.config.normalize:
            x = unit_rows(x)
        return np.ascontiguousarray(x, dtype=np.float32)

    def _fit(self, x):
        c = self.config
        k = int(c.branching)
        if k < 2:
            raise ValueError("hkmeans: branching must be at least 2")
        x = self._prep(x)
        n = len(x)
        centroids, targets, offsets = [], [], [0]
        member_leaf = np.full(n, -1, dtype=np.int64)
        member_position = np.zeros(n, dtype=np.int64)
        n_leaves = 0
        max_path = 0

        def new_leaf(items: np.ndarray) -> int:
            nonlocal n_leaves
            leaf = n_leaves
            n_leaves += 1
            member_leaf[items] = leaf
            member_position[items] = np.arange(len(items)) % k
            return leaf

        if n <= k:  # the whole catalogue is one leaf: the code is just the position
            new_leaf(np.arange(n))
            self.child_centroids = np.zeros((0, x.shape[1]), dtype=np.float32)
            self.child_target = np.zeros(0, dtype=np.int64)
            self.node_offsets = np.zeros(1, dtype=np.int64)
        else:
            queue = [(np.arange(n), 1)]  # (items of a node to split, depth of its children)
            node_count = 0
            while queue:
                items, depth = queue.pop(0)
                node_id = node_count
                node_count += 1
                cents = kmeans(x[items], k, niter=c.niter, seed=c.seed + node_id, init=c.init)
                labels, _ = nearest(x[items], cents)
                splittable = len(np.unique(labels)) > 1
                node_targets = np.empty(k, dtype=np.int64)
                for j in range(k):
                    sub = items[labels == j]
                    if len(sub) > k and splittable and depth < c.max_depth:
                        node_targets[j] = node_count + len(queue)
                        queue.append((sub, depth + 1))
                    else:
                        node_targets[j] = -new_leaf(sub) - 1
                        if len(sub):
                            max_path = max(max_path, depth)
                centroids.append(cents)
                targets.append(node_targets)
                offsets.append(offsets[-1] + k)
            self.child_centroids = np.concatenate(centroids).astype(np.float32)
            self.child_target = np.concatenate(targets)
            self.node_offsets = np.asarray(offsets, dtype=np.int64)
        self.depth = max_path
        self.member_embeddings = x
        self.member_leaf = member_leaf
        self.member_position = member_position
        self.fit_info = {"n_nodes": int(len(self.node_offsets) - 1), "n_leaves": int(n_leaves),
                         "depth": int(self.depth),
                         "largest_leaf": int(np.bincount(member_leaf).max()) if n else 0}
        return self._encode_prepped(x)

    def _route(self, x):
        """(path codes padded with k, leaf id) for each row."""
        k = self.config.branching
        n = len(x)
        path = np.full((n, self.depth), k, dtype=np.int64)
        leaf = np.full(n, -1, dtype=np.int64)
        if len(self.node_offsets) == 1:  # single leaf
            leaf[:] = 0
            return path, leaf
        node = np.zeros(n, dtype=np.int64)
        active = np.arange(n)
        level = 0
        while len(active):
            next_active = []
            for nid in np.unique(node[active]):
                rows = active[node[active] == nid]
                lo, hi = self.node_offsets[nid], self.node_offsets[nid + 1]
                j, _ = nearest(x[rows], self.child_centroids[lo:hi])
                tgt = self.child_target[lo + j]
                if level < self.depth:
                    path[rows, level] = j
                is_leaf = tgt < 0
                leaf[rows[is_leaf]] = -tgt[is_leaf] - 1
                node[rows[~is_leaf]] = tgt[~is_leaf]
                next_active.append(rows[~is_leaf])
            active = np.concatenate(next_active) if next_active else np.zeros(0, dtype=np.int64)
            level += 1
        return path, leaf

    def _encode_prepped(self, x):
        path, leaf = self._route(x)
        position = np.zeros(len(x), dtype=np.int64)
        order = np.argsort(self.member_leaf, kind="stable")
        bounds = np.searchsorted(self.member_leaf[order], np.arange(self.member_leaf.max() + 2))
        for lid in np.unique(leaf):
            rows = np.nonzero(leaf == lid)[0]
            members = order[bounds[lid]:bounds[lid + 1]]
            if len(members) == 0:
                continue  # a cluster no fitted item fell into: position 0
            nn, _ = nearest(x[rows], self.member_embeddings[members])
            position[rows] = self.member_position[members[nn]]
        return np.concatenate([path, position[:, None]], axis=1)

    def _encode(self, x):
        return self._encode_prepped(self._prep(x))

    def reconstruct(self, x):
        """The mean of the fitted items in the embedding's leaf (its finest cluster)."""
        xp = self._prep(x)
        _, leaf = self._route(xp)
        n_leaves = int(self.member_leaf.max()) + 1
        sums = np.zeros((n_leaves, xp.shape[1]), dtype=np.float64)
        np.add.at(sums, self.member_leaf, self.member_embeddings)
        counts = np.bincount(self.member_leaf, minlength=n_leaves)[:, None]
        means = (sums / np.maximum(counts, 1)).astype(np.float32)
        recon = means[leaf]
        if self.config.normalize:
            recon = recon * np.linalg.norm(x, axis=1, keepdims=True)
        return recon

    def semantic_level_sizes(self):
        k = self.config.branching
        sizes = [k] + [k + 1] * (self.depth - 1) if self.depth else []
        pads = [None] + [k] * (self.depth - 1) if self.depth else []
        return sizes + [k], pads + [None]

    def _state(self):
        return {"child_centroids": self.child_centroids, "child_target": self.child_target,
                "node_offsets": self.node_offsets, "depth": np.asarray(self.depth),
                "member_embeddings": self.member_embeddings, "member_leaf": self.member_leaf,
                "member_position": self.member_position}

    def _set_state(self, state):
        self.child_centroids = state["child_centroids"]
        self.child_target = state["child_target"]
        self.node_offsets = state["node_offsets"]
        self.depth = int(state["depth"])
        self.member_embeddings = state["member_embeddings"]
        self.member_leaf = state["member_leaf"]
        self.member_position = state["member_position"]
