"""RQ-VAE (TIGER) and, as the same model with other loss weights, CoST.

An MLP encoder maps an item embedding to a latent z; `len(codebook_sizes)` residual
codebooks quantise z level by level (level l picks the code nearest to what levels < l left);
an MLP decoder maps the summed codes back to the embedding space.

Loss = reconstruction_weight * ||x - x_hat||^2
     + contrastive_weight   * InfoNCE(x_hat, x)   (CoST: x_hat_i's positive is x_i, the rest of
                                                    the batch are negatives, temperature tau)
     + codebook_weight      * sum_l ||sg(r_l) - q_l||^2
     + commitment_weight    * sum_l ||r_l - sg(q_l)||^2
Gradients pass the quantiser by a small strategy object: the straight-through estimator or
the rotation trick (Fifty et al., 2024). Codebooks start from residual k-means on the initial
latents, and codes left unused for `dead_code_reset_every` steps are re-seeded with latents
from the current batch, which keeps codebooks from collapsing.

`cost` is this class with CoST's defaults (3 x 64 codes, latent 96, tau 0.1, alpha 0.1);
set reconstruction_weight=0 for contrastive-only or contrastive_weight=0 for reconstruction-only.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field

import numpy as np

from ..device import resolve_device
from .base import TOKENIZERS, Tokenizer, TokenizerConfig, unit_rows
from .kmeans import residual_kmeans

log = logging.getLogger(__name__)


@dataclass
class RQVAEConfig(TokenizerConfig):
    dedup: str = "always"  # TIGER appends the disambiguation digit to every item
    codebook_sizes: list[int] = field(default_factory=lambda: [256, 256, 256])
    latent_dim: int = 32
    hidden_dims: list[int] = field(default_factory=lambda: [512, 256, 128])
    dropout: float = 0.0
    normalize_input: bool = False
    # Loss weights.
    reconstruction_weight: float = 1.0
    contrastive_weight: float = 0.0
    temperature: float = 0.1
    codebook_weight: float = 1.0
    commitment_weight: float = 0.25  # beta
    gradient_estimator: str = "ste"  # ste | rotation
    # Optimisation.
    steps: int = 3000
    batch_size: int = 1024  # 0 = full batch
    lr: float = 1e-3
    weight_decay: float = 0.0
    kmeans_init: bool = True
    kmeans_niter: int = 20
    dead_code_reset_every: int = 100  # 0 disables
    dead_code_reset_until: float = 0.9  # stop re-seeding after this share of the steps
    device: str = "auto"  # auto (cuda if available) | cpu | cuda | cuda:1 ...
    # torch threads while training on CPU (0 = torch's default). This MLP is too small to gain
    # from more: on a busy 2-core machine one thread ran a step in 45 ms, two threads in 500+ ms.
    cpu_threads: int = 1
    log_every: int = 500


@dataclass
class CoSTConfig(RQVAEConfig):
    codebook_sizes: list[int] = field(default_factory=lambda: [64, 64, 64])
    latent_dim: int = 96
    reconstruction_weight: float = 0.1  # alpha
    contrastive_weight: float = 1.0
    temperature: float = 0.1


def _torch():
    import torch  # noqa: PLC0415

    return torch


# --------------------------------------------------------------------------- gradient estimators


class GradientEstimator:
    """How gradients reach the encoder through the (non-differentiable) code lookup."""

    name = ""

    def __call__(self, z, z_q):
        raise NotImplementedError


class StraightThrough(GradientEstimator):
    """Forward: z_q; backward: identity onto z."""

    name = "ste"

    def __call__(self, z, z_q):
        return z + (z_q - z).detach()


class RotationTrick(GradientEstimator):
    """Forward: z_q; backward: through the rotation + rescaling that maps z onto z_q (both fixed)."""

    name = "rotation"

    def __call__(self, z, z_q):
        eps = 1e-8
        z_norm = z.norm(dim=-1, keepdim=True).clamp_min(eps)
        q_norm = z_q.norm(dim=-1, keepdim=True).clamp_min(eps)
        z_hat = (z / z_norm).detach()
        q_hat = (z_q / q_norm).detach()
        r = z_hat + q_hat
        r = (r / r.norm(dim=-1, keepdim=True).clamp_min(eps)).detach()
        rotated = (z - 2 * (z * r).sum(-1, keepdim=True) * r
                   + 2 * (z * z_hat).sum(-1, keepdim=True) * q_hat)
        return rotated * (q_norm / z_norm).detach()


GRADIENT_ESTIMATORS = {cls.name: cls for cls in (StraightThrough, RotationTrick)}


# --------------------------------------------------------------------------- model


def _build_model(input_dim: int, cfg: RQVAEConfig):
    torch = _torch()
    nn = torch.nn

    def mlp(dims):
        layers = []
        for i in range(len(dims) - 1):
            layers.append(nn.Linear(dims[i], dims[i + 1]))
            if i < len(dims) - 2:
                layers.append(nn.SiLU())
                if cfg.dropout > 0:
                    layers.append(nn.Dropout(cfg.dropout))
        return nn.Sequential(*layers)

    class RQVAE(nn.Module):
        def __init__(self):
            super().__init__()
            dims = [input_dim, *cfg.hidden_dims, cfg.latent_dim]
            self.encoder = mlp(dims)
            self.decoder = mlp(dims[::-1])
            self.codebooks = nn.ParameterList(
                [nn.Parameter(torch.randn(size, cfg.latent_dim) * 0.1) for size in cfg.codebook_sizes])

        def quantize(self, z):
            """(codes, summed codes, codebook loss, commitment loss, residual input per level)."""
            residual = z
            codes, parts, residuals = [], [], []
            cb_loss = z.new_zeros(())
            commit = z.new_zeros(())
            for book in self.codebooks:
                dist = (residual.pow(2).sum(1, keepdim=True) - 2 * residual @ book.T
                        + book.pow(2).sum(1)[None, :])
                idx = dist.argmin(dim=1)
                q = book[idx]
                cb_loss = cb_loss + (q - residual.detach()).pow(2).sum(1).mean()
                commit = commit + (residual - q.detach()).pow(2).sum(1).mean()
                residuals.append(residual.detach())
                residual = residual - q.detach()
                codes.append(idx)
                parts.append(q)
            z_q = torch.stack(parts).sum(0)
            return torch.stack(codes, 1), z_q, cb_loss, commit, residuals

    return RQVAE()


# --------------------------------------------------------------------------- tokenizer


@TOKENIZERS.register("rqvae")
class RQVAETokenizer(Tokenizer):
    name = "rqvae"
    Config = RQVAEConfig

    def __init__(self, config=None):
        super().__init__(config)
        if self.config.gradient_estimator not in GRADIENT_ESTIMATORS:
            raise ValueError(f"gradient_estimator must be one of {sorted(GRADIENT_ESTIMATORS)}, "
                             f"got {self.config.gradient_estimator!r}")
        self.model = None
        self.history: list[dict] = []

    # ---- helpers
    def _prep(self, x):
        if self.config.normalize_input:
            x = unit_rows(x)
        return np.ascontiguousarray(x, dtype=np.float32)

    def _loss_terms(self, batch, estimator):
        torch = _torch()
        F = torch.nn.functional
        c = self.config
        z = self.model.encoder(batch)
        codes, z_q, cb_loss, commit, residuals = self.model.quantize(z)
        x_hat = self.model.decoder(estimator(z, z_q))
        terms = {"codebook": cb_loss, "commitment": commit}
        total = c.codebook_weight * cb_loss + c.commitment_weight * commit
        if c.reconstruction_weight:
            recon = (x_hat - batch).pow(2).sum(1).mean()
            terms["reconstruction"] = recon
            total = total + c.reconstruction_weight * recon
        if c.contrastive_weight:
            logits = F.normalize(x_hat, dim=1) @ F.normalize(batch, dim=1).T / c.temperature
            contrastive = F.cross_entropy(logits, torch.arange(len(batch), device=batch.device))
            terms["contrastive"] = contrastive
            total = total + c.contrastive_weight * contrastive
        terms["total"] = total
        return terms, codes, residuals

    def _fit(self, x):
        torch = _torch()
        device = resolve_device(self.config.device)
        previous_threads = torch.get_num_threads()
        if device.type == "cpu" and self.config.cpu_threads > 0:
            torch.set_num_threads(self.config.cpu_threads)
        try:
            return self._train(x, device)
        finally:
            torch.set_num_threads(previous_threads)

    def _train(self, x, device):
        torch = _torch()
        c = self.config
        generator = torch.Generator().manual_seed(int(c.seed))
        torch.manual_seed(int(c.seed))
        x = self._prep(x)
        n = len(x)
        self.model = _build_model(x.shape[1], c).to(device)
        data = torch.from_numpy(x).to(device)
        estimator = GRADIENT_ESTIMATORS[c.gradient_estimator]()
        started = time.perf_counter()

        if c.kmeans_init:
            with torch.no_grad():
                self.model.eval()
                z0 = self._latents(data).cpu().numpy()
            books, _ = residual_kmeans(z0, list(c.codebook_sizes), niter=c.kmeans_niter, seed=c.seed)
            with torch.no_grad():
                for param, book in zip(self.model.codebooks, books):
                    param.copy_(torch.from_numpy(book).to(device))

        optim = torch.optim.AdamW(self.model.parameters(), lr=c.lr, weight_decay=c.weight_decay)
        batch_size = n if c.batch_size <= 0 else min(c.batch_size, n)
        usage = [torch.zeros(s, dtype=torch.long, device=device) for s in c.codebook_sizes]
        reset_until = int(c.dead_code_reset_until * c.steps)
        n_resets = 0
        self.history = []
        perm = torch.randperm(n, generator=generator).to(device)
        cursor = 0
        self.model.train()
        for step in range(1, c.steps + 1):
            if batch_size == n:
                batch = data
            else:
                if cursor + batch_size > n:
                    perm = torch.randperm(n, generator=generator).to(device)
                    cursor = 0
                batch = data[perm[cursor:cursor + batch_size]]
                cursor += batch_size
            terms, codes, residuals = self._loss_terms(batch, estimator)
            optim.zero_grad(set_to_none=True)
            terms["total"].backward()
            optim.step()
            with torch.no_grad():
                for level, counts in enumerate(usage):
                    counts += torch.bincount(codes[:, level], minlength=len(counts))
                if c.dead_code_reset_every and step % c.dead_code_reset_every == 0:
                    if step <= reset_until:
                        n_resets += self._reset_dead_codes(usage, residuals, optim, generator)
                    for counts in usage:
                        counts.zero_()
            if step == 1 or step % max(1, c.log_every) == 0 or step == c.steps:
                record = {"step": step, **{k: float(v.detach()) for k, v in terms.items()}}
                self.history.append(record)
                log.info("%s step %d/%d: %s", self.name, step, c.steps,
                         ", ".join(f"{k} {v:.4f}" for k, v in record.items() if k != "step"))
        self.model.eval()
        self.fit_info = {"device": str(device), "train_seconds": time.perf_counter() - started,
                         "dead_codes_reset": int(n_resets), "history": self.history}
        return self._encode_prepped(x)

    def _reset_dead_codes(self, usage, residuals, optim, generator) -> int:
        """Re-seeds codes unused since the last check with random residuals of the current batch."""
        torch = _torch()
        total = 0
        for level, counts in enumerate(usage):
            dead = torch.nonzero(counts == 0).flatten()
            if len(dead) == 0:
                continue
            pool = residuals[level]
            pick = torch.randint(len(pool), (len(dead),), generator=generator).to(pool.device)
            book = self.model.codebooks[level]
            book.data[dead] = pool[pick]
            state = optim.state.get(book)
            if state:  # forget the stale Adam moments of the re-seeded rows
                for key in ("exp_avg", "exp_avg_sq"):
                    if key in state:
                        state[key][dead] = 0
            total += len(dead)
        return total

    def _latents(self, data, chunk: int = 8192):
        return _torch().cat([self.model.encoder(data[i:i + chunk]) for i in range(0, len(data), chunk)])

    def _encode_prepped(self, x):
        torch = _torch()
        device = next(self.model.parameters()).device
        out = []
        self.model.eval()
        with torch.no_grad():
            for i in range(0, len(x), 8192):
                z = self.model.encoder(torch.from_numpy(x[i:i + 8192]).to(device))
                codes, *_ = self.model.quantize(z)
                out.append(codes.cpu().numpy())
        return np.concatenate(out).astype(np.int64)

    def _encode(self, x):
        return self._encode_prepped(self._prep(x))

    def decode(self, codes: np.ndarray) -> np.ndarray:
        """Semantic codes -> decoder output (in the possibly normalised input space)."""
        torch = _torch()
        codes = np.asarray(codes)[:, : len(self.config.codebook_sizes)]
        device = next(self.model.parameters()).device
        with torch.no_grad():
            idx = torch.from_numpy(codes).to(device)
            z_q = sum(book[idx[:, level]] for level, book in enumerate(self.model.codebooks))
            return self.model.decoder(z_q).cpu().numpy().astype(np.float32)

    def reconstruct(self, x):
        recon = self.decode(self.encode(x))
        if self.config.normalize_input:
            recon = recon * np.linalg.norm(x, axis=1, keepdims=True)
        return recon

    def latent_quantization_error(self, x: np.ndarray) -> float:
        """Mean squared distance between the latent z and its quantised version, per latent dim."""
        torch = _torch()
        device = next(self.model.parameters()).device
        with torch.no_grad():
            z = self._latents(torch.from_numpy(self._prep(x)).to(device))
            _, z_q, *_ = self.model.quantize(z)
            return float((z - z_q).pow(2).mean())

    def semantic_level_sizes(self):
        return [int(s) for s in self.config.codebook_sizes], [None] * len(self.config.codebook_sizes)

    def _state(self):
        return {f"param.{k}": v.detach().cpu().numpy() for k, v in self.model.state_dict().items()}

    def _set_state(self, state):
        torch = _torch()
        self.model = _build_model(int(self.dim), self.config)
        params = {k[len("param."):]: torch.from_numpy(np.array(v)) for k, v in state.items() if k.startswith("param.")}
        self.model.load_state_dict(params)
        self.model.to(resolve_device(self.config.device, fallback_to_cpu=True)).eval()


@TOKENIZERS.register("cost")
class CoSTTokenizer(RQVAETokenizer):
    """CoST: the RQ-VAE above with CoST's loss weights and sizes as defaults (no other change)."""

    name = "cost"
    Config = CoSTConfig
