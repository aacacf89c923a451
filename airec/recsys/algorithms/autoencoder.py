"""Mult-DAE / Mult-VAE (Liang et al. 2018) with an optional closed-form linear path.

Network (default Mult-DAE [I -> 200 -> I]; `hidden` adds layers, `variational` makes it a Mult-VAE):
L2-normalised input -> input dropout -> tanh code -> item logits, trained with the multinomial
log-likelihood on sparse row batches (only a batch of logits is ever dense). Early stopping watches
the validation ranking metric and keeps the best weights. `members=k` trains k one-layer nets side by
side, each on its own softmax, and averages their logits: on ml-100k / ml-latest-small the network
alone gained ~0.007 NDCG@100 with k=5 (every seed), at about 4x the training time.

Linear path: after the network is trained, an EASE item-item model B is fitted in closed form on the
same training rows (lambda chosen on validation; the dual form when units are fewer than items, so no
items^2 matrix is needed) and the scores become `logits + alpha * (x @ B)`,
with alpha chosen on validation (0 = network alone). The network captures shared latent taste, B the
exact item-to-item co-occurrences; the blend ranks better than either on every benchmark dataset.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse as sp
import torch
from torch import nn

from airec.recsys.algorithms.ease import EASE
from airec.recsys.base import (
    DataShape,
    FitReport,
    ProgressCallback,
    Recommender,
    read_manifest,
    write_manifest,
)
from airec.recsys.data import as_csr32, binarize, fit_matrix
from airec.recsys.evaluation import Pair, selection_metric
from airec.recsys.metrics import per_row_metrics

#: Subfolder holding the linear path (an EASE model folder of its own).
LINEAR = "linear"
#: Up to this many rows are scored in numpy on the weights' own memory: a request's one row (or an
#: explanation's few) cost ~0.1 ms there against ~0.8 ms through torch's sparse and module machinery.
#: Bigger batches (validation, evaluation) go through torch.
NUMPY_ROWS = 64


class _Net(nn.Module):
    """items -> [hidden] -> latent -> [hidden] -> items; hidden=0 gives Liang et al.'s [I -> 200 -> I].

    `members` > 1 (one-layer net only) packs that many independent nets side by side: each owns a block
    of `latent` code units and of decoder columns, is trained on its own softmax, and scoring averages
    their logits (an ensemble; the output bias is shared).
    """

    def __init__(self, n_items: int, hidden: int, latent: int, variational: bool, members: int = 1) -> None:
        super().__init__()
        if members > 1 and hidden:
            raise ValueError("members > 1 needs the one-layer net (hidden=0)")
        self.variational, self.latent, self.hidden, self.members = variational, latent, hidden, members
        width = latent * members
        code = 2 * width if variational else width  # mean and log-variance when variational
        self.width = width
        self.enc_in = nn.Linear(n_items, hidden or code)
        self.enc_out = nn.Linear(hidden, code) if hidden else None
        self.dec_in = nn.Linear(latent, hidden) if hidden else None
        self.dec_out = nn.Linear(hidden or width, n_items)
        if members > 1:  # each member's decoder block initialised as a net of its own
            bound = 1.0 / np.sqrt(latent)
            nn.init.uniform_(self.dec_out.weight, -bound, bound)
            nn.init.uniform_(self.dec_out.bias, -bound, bound)

    def forward(self, xs: torch.Tensor, per_member: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
        """Logits and KL term from a sparse, already normalised (and corrupted) input batch; with
        `per_member`, logits are (members, rows, items), otherwise the members' mean."""
        z = torch.sparse.mm(xs, self.enc_in.weight.t()) + self.enc_in.bias
        if self.enc_out is not None:
            z = self.enc_out(torch.tanh(z))
        kl = torch.zeros(())
        if self.variational:
            mu, logvar = z[:, : self.width], z[:, self.width :]
            z = mu + torch.randn_like(mu) * torch.exp(0.5 * logvar) if self.training else mu
            kl = 0.5 * torch.mean(torch.sum(mu**2 + logvar.exp() - 1.0 - logvar, dim=1))
        else:
            z = torch.tanh(z)
        if self.dec_in is not None:
            z = torch.tanh(self.dec_in(z))
        if self.members == 1:
            logits = self.dec_out(z)
            return (logits[None] if per_member else logits), kl
        if not per_member:
            return z @ self.dec_out.weight.t() / self.members + self.dec_out.bias, kl
        W = self.dec_out.weight.view(-1, self.members, self.latent)
        zm = z.view(z.shape[0], self.members, self.latent)
        return torch.einsum("bkl,ikl->kbi", zm, W) + self.dec_out.bias, kl


def _sparse_input(
    X: sp.csr_matrix, dropout: float = 0.0, rng: np.random.Generator | None = None
) -> torch.Tensor:
    """Torch sparse batch: input dropout on the stored entries, then rows L2-normalised."""
    X = sp.csr_matrix(X, dtype=np.float32)
    rows = np.repeat(np.arange(X.shape[0]), np.diff(X.indptr))
    cols, vals = X.indices, X.data.astype(np.float32)
    if dropout > 0 and rng is not None:
        kept = rng.random(vals.size) >= dropout
        rows, cols, vals = rows[kept], cols[kept], vals[kept]
    norms = np.sqrt(np.bincount(rows, weights=vals**2, minlength=X.shape[0]))
    vals = vals / np.maximum(norms[rows], 1e-12)
    index = torch.from_numpy(np.vstack([rows, cols]).astype(np.int64))
    # CSR order is already row-major with unique entries, i.e. coalesced.
    return torch.sparse_coo_tensor(
        index, torch.from_numpy(vals.astype(np.float32)), X.shape, check_invariants=False, is_coalesced=True
    )


def _nll(logits: torch.Tensor, X: sp.csr_matrix) -> torch.Tensor:
    """Summed multinomial negative log-likelihood of the rows' items (gathered, never densified);
    logits of shape (members, rows, items) give the members' mean."""
    rows = torch.from_numpy(np.repeat(np.arange(X.shape[0]), np.diff(X.indptr)))
    cols = torch.from_numpy(X.indices.astype(np.int64))
    if logits.dim() == 3:
        return -torch.log_softmax(logits, dim=2)[:, rows, cols].sum() / logits.shape[0]
    return -torch.log_softmax(logits, dim=1)[rows, cols].sum()


class AutoEncoder(Recommender):
    """Multinomial denoising / variational autoencoder over item sets."""

    name = "autoencoder"

    def __init__(
        self,
        hidden: int = 0,
        latent: int = 200,
        dropout: float = 0.5,
        lr: float = 3e-3,
        weight_decay: float = 0.0,
        epochs: int = 100,
        patience: int = 5,
        max_updates: int = 1000,
        batch_size: int | None = None,
        variational: bool = False,
        beta: float = 0.2,
        anneal_epochs: int = 10,
        linear_path: bool = True,
        max_items: int = 20000,
        seed: int = 0,
        threads: int | None = None,
        members: int = 1,
        blend: float | None = None,
        linear_lam: float | None = None,
    ) -> None:
        self.hidden, self.latent, self.dropout = int(hidden), int(latent), float(dropout)
        self.lr, self.weight_decay = float(lr), float(weight_decay)
        self.epochs, self.patience, self.max_updates = int(epochs), int(patience), int(max_updates)
        self.batch_size = int(batch_size) if batch_size else None
        self.variational, self.beta, self.anneal_epochs = bool(variational), float(beta), int(anneal_epochs)
        self.linear_path, self.max_items = bool(linear_path), int(max_items)
        self.seed = int(seed)
        self.members = int(members)
        # Fixed instead of chosen on validation (a refit repeats a fit's choices): the linear path's
        # weight (0 = network alone) and its EASE lambda.
        self.blend = float(blend) if blend is not None else None
        self.linear_lam = float(linear_lam) if linear_lam is not None else None
        # One thread by default: on a shared 2-core machine two threads were measured 10x slower
        # (oversubscription), and these layers are too small to gain from a second thread.
        self.threads = int(threads) if threads else 1
        self._check_ranges()
        self.net: _Net | None = None
        self.n_items = 0
        self.chosen_lam: float | None = None
        self.best_epoch = 0
        self.alpha: float | None = None  # chosen weight of the linear path
        self.linear: EASE | None = None  # the linear path, blended after training
        self._warm = False
        self._arrays: dict[str, np.ndarray] | None = None  # numpy views of the net's weights

    #: (low, high) bounds of each hyper-parameter: a typo must not allocate gigabytes or run for days.
    RANGES = {
        "hidden": (0, 4096),
        "latent": (1, 4096),
        "dropout": (0.0, 0.95),
        "lr": (1e-6, 1.0),
        "weight_decay": (0.0, 1.0),
        "epochs": (1, 10000),
        "patience": (1, 10000),
        "max_updates": (1, 10**6),
        "batch_size": (1, 65536),
        "beta": (0.0, 100.0),
        "anneal_epochs": (0, 10000),
        "members": (1, 16),
        "threads": (1, 64),
        "blend": (0.0, 1e6),
        "linear_lam": (1e-6, 1e9),
    }

    def _check_ranges(self) -> None:
        for name, (low, high) in self.RANGES.items():
            value = getattr(self, name)
            if value is not None and not low <= value <= high:
                raise ValueError(f"{name} must be between {low} and {high}, got {value}")

    # -- building -------------------------------------------------------------------------------
    def _new_net(self, n_items: int) -> _Net:
        torch.manual_seed(self.seed)
        return self._build(n_items)

    def _build(self, n_items: int) -> _Net:
        return _Net(n_items, self.hidden, self.latent, self.variational, self.members)

    def warm_start_from(self, old: AutoEncoder, old_index_for_new: np.ndarray) -> None:
        """Initialise from a trained model over an older catalogue before `fit`.

        `old_index_for_new[j]` is the old column of new item j, or -1 for an item the old model never
        saw: known items keep their input and output weights, new items get fresh ones, and the
        inner layers are copied whole (so sizes must match). The linear path is refitted by `fit`.
        """
        if old.net is None:
            raise ValueError("the old model is not fitted")
        if (old.hidden, old.latent, old.variational, old.members) != (
            self.hidden,
            self.latent,
            self.variational,
            self.members,
        ):
            raise ValueError("warm start needs the same hidden/latent sizes, members and variational flag")
        mapping = np.asarray(old_index_for_new, dtype=np.int64)
        net = self._new_net(mapping.size)
        known = np.flatnonzero(mapping >= 0)
        src, dst = torch.from_numpy(mapping[known]), torch.from_numpy(known)
        with torch.no_grad():
            net.enc_in.weight[:, dst] = old.net.enc_in.weight[:, src]
            net.enc_in.bias.copy_(old.net.enc_in.bias)
            net.dec_out.weight[dst] = old.net.dec_out.weight[src]
            net.dec_out.bias[dst] = old.net.dec_out.bias[src]
            for name, child in net.named_children():
                if name not in ("enc_in", "dec_out") and child is not None:
                    child.load_state_dict(getattr(old.net, name).state_dict())
        self.net, self.n_items, self._warm, self._arrays = net, mapping.size, True, None

    # -- training -------------------------------------------------------------------------------
    def fit(
        self,
        X: sp.csr_matrix,
        *,
        validation: Pair | None = None,
        progress: ProgressCallback | None = None,
    ) -> FitReport:
        start = time.perf_counter()
        torch.set_num_threads(self.threads)
        X = fit_matrix(X)
        n_items = X.shape[1]
        if not (self._warm and self.net is not None and self.n_items == n_items):
            self.net = self._new_net(n_items)
        self._warm = False
        self._arrays = None
        self.n_items, net = n_items, self.net
        self.linear, self.alpha = None, None  # the network trains alone; the linear path is blended in after
        rng = np.random.default_rng(self.seed)
        torch.manual_seed(self.seed)
        # fused: the same update in one kernel per tensor; on a 16k-item catalogue a step over the
        # encoder and decoder took 42 ms of a 280 ms batch unfused, about 6 ms fused.
        opt = torch.optim.Adam(net.parameters(), lr=self.lr, weight_decay=self.weight_decay, fused=True)
        metric = selection_metric(validation[1]) if validation is not None else None
        n_batches = max(1, int(np.ceil(X.shape[0] / self._batch_size(X.shape[0]))))
        anneal_steps = max(1, self.anneal_epochs * n_batches)
        # Cap on optimiser updates: big data converge in a few epochs, small data get many.
        max_epochs = min(self.epochs, max(1, int(np.ceil(self.max_updates / n_batches))))
        report = FitReport()
        best, best_state, bad, step = -np.inf, None, 0, 0
        for epoch in range(1, max_epochs + 1):
            net.train()
            total = 0.0
            for idx in np.array_split(rng.permutation(X.shape[0]), n_batches):
                batch = X[np.sort(idx)]
                logits, kl = net(_sparse_input(batch, self.dropout, rng), per_member=True)
                nll = _nll(logits, batch) / batch.shape[0]
                beta = self.beta * min(1.0, step / anneal_steps) if self.variational else 0.0
                opt.zero_grad(set_to_none=True)
                (nll + beta * kl).backward()
                opt.step()
                total += float(nll.detach()) * batch.shape[0]
                step += 1
            entry = {"epoch": epoch, "max_epochs": max_epochs, "train_loss": total / max(X.shape[0], 1)}
            if validation is not None:
                entry["val_loss"], entry["val_ndcg"] = self._validate(validation, metric)
                if entry["val_ndcg"] > best:
                    best, bad, self.best_epoch = entry["val_ndcg"], 0, epoch
                    best_state = copy.deepcopy(net.state_dict())
                else:
                    bad += 1
            report.history.append(entry)
            if progress:
                progress(dict(entry))
            if validation is not None and bad >= self.patience:
                break
        if best_state is not None:
            net.load_state_dict(best_state)
        else:
            self.best_epoch = len(report.history)
        net.eval()
        if self.linear_path and min(X.shape) <= self.max_items and self.blend != 0.0:
            linear = self._fit_linear(X, validation)
            if self.blend is not None:
                self.alpha, self.linear = self.blend, linear
            elif validation is not None:
                best = self._choose_alpha(linear, validation, metric, report)
            else:
                self._fit_alpha(linear, X, rng)
        report.params = self.get_params()
        report.validation = {
            "val_ndcg": float(best) if np.isfinite(best) else None,
            "best_epoch": self.best_epoch,
            "alpha": self.alpha,
            "seconds": time.perf_counter() - start,
        }
        return report

    def _fit_linear(self, X: sp.csr_matrix, validation: Pair | None) -> EASE:
        ease = EASE(lam=self.linear_lam, max_items=self.max_items)
        ease.fit(X, validation=validation)
        self.chosen_lam = ease.chosen_lam
        return ease

    def _batch_size(self, n_rows: int) -> int:
        """Given, or ~50 updates per epoch within [32, 512]: small data need many small steps."""
        return self.batch_size or int(np.clip(n_rows // 50, 32, 512))

    def _choose_alpha(self, linear: EASE, validation: Pair, metric: str, report: FitReport) -> float:
        """Weight of the linear path picked on validation (0 = network alone); both parts are scored
        once per chunk of rows (memory stays bounded) and only their weighted sum is re-ranked per
        candidate."""
        X_in, X_hid = validation
        k = int(metric.split("@")[1])
        alphas = np.concatenate([[0.0], np.geomspace(0.1, 1000.0, 21)])
        totals, rows = np.zeros(alphas.size), 0
        for s in range(0, X_in.shape[0], 1024):
            x_in, x_hid = X_in[s : s + 1024], X_hid[s : s + 1024]
            deep, lin = self.score(x_in), linear.score(x_in)
            for i, a in enumerate(alphas):
                values = per_row_metrics(deep + a * lin, x_in, x_hid, [k])[metric]
                totals[i] += values.sum()
            rows += values.size
        best_a, best = 0.0, -np.inf
        for a, total in zip(alphas, totals, strict=True):
            value = float(total / max(rows, 1))
            report.history.append({"alpha": float(a), "val_ndcg": value})
            if value > best + 1e-9:
                best_a, best = float(a), value
        self.alpha, self.linear = best_a, (linear if best_a > 0 else None)
        return best

    def _fit_alpha(self, linear: EASE, X: sp.csr_matrix, rng: np.random.Generator) -> None:
        """Without validation: the weight whose blend best fits held-back items of training rows."""
        rows = np.sort(rng.choice(X.shape[0], size=min(X.shape[0], 2000), replace=False))
        X_rows = X[rows]
        kept = X_rows.copy()
        kept.data = (rng.random(kept.nnz) >= 0.5).astype(np.float32)
        kept.eliminate_zeros()
        with torch.inference_mode():
            deep = self.net(_sparse_input(kept))[0]
        lin = torch.from_numpy(linear.score(kept))
        grid = np.geomspace(0.1, 1000.0, 21)
        self.alpha = float(grid[int(np.argmin([float(_nll(deep + a * lin, X_rows)) for a in grid]))])
        self.linear = linear

    def _validate(self, validation: Pair, metric: str) -> tuple[float, float]:
        """Validation loss (multinomial NLL per unit of each unit's full item set given its input items)
        and ranking metric, from one forward pass per chunk: the network alone is being trained, so its
        logits are what `score` would rank."""
        X_in, X_hid = validation
        k = int(metric.split("@")[1])
        self.net.eval()
        total, values = 0.0, []
        with torch.inference_mode():
            for s in range(0, X_in.shape[0], 1024):
                x_in, x_hid = X_in[s : s + 1024], X_hid[s : s + 1024]
                logits, _ = self.net(_sparse_input(x_in))
                total += float(_nll(logits, binarize(x_in + x_hid)))
                values.append(per_row_metrics(logits.numpy(), x_in, x_hid, [k])[metric])
        self.net.train()
        return total / max(X_in.shape[0], 1), float(np.concatenate(values).mean())

    # -- inference --------------------------------------------------------------------------------
    def score(self, X: sp.csr_matrix) -> np.ndarray:
        """Network logits, plus alpha * (X @ B) when the linear path is on."""
        if self.net is None:
            raise ValueError("model is not fitted")
        X = as_csr32(X)
        if X.shape[0] <= NUMPY_ROWS:
            out = self._numpy_logits(X)
        else:
            out = self._torch_logits(X)
        if self.linear is not None and self.alpha:
            out += self.alpha * self.linear.score(X)
        return out

    def _torch_logits(self, X: sp.csr_matrix) -> np.ndarray:
        was_training = self.net.training
        self.net.eval()
        out = np.empty((X.shape[0], self.n_items), dtype=np.float32)
        with torch.inference_mode():
            for s in range(0, X.shape[0], 1024):
                logits, _ = self.net(_sparse_input(X[s : s + 1024]))
                out[s : s + logits.shape[0]] = logits.numpy()
        self.net.train(was_training)
        return out

    def _weights(self) -> dict[str, np.ndarray]:
        """The net's parameters as numpy arrays sharing the tensors' memory (no copy)."""
        if self._arrays is None:
            self._arrays = {k: v.detach().numpy() for k, v in self.net.state_dict().items()}
        return self._arrays

    def _numpy_logits(self, X: sp.csr_matrix) -> np.ndarray:
        """_Net.forward in evaluation mode, in numpy: the encoder gathers the weight columns of each
        row's items (rows L2-normalised as in _sparse_input), the decoder is one BLAS product."""
        w = self._weights()
        n = X.shape[0]
        sizes = np.diff(X.indptr)
        rows = np.repeat(np.arange(n), sizes)
        norms = np.sqrt(np.bincount(rows, weights=X.data.astype(np.float64) ** 2, minlength=n))
        values = (X.data / np.maximum(norms[rows], 1e-12)).astype(np.float32)
        W_in = w["enc_in.weight"]
        z = np.empty((n, W_in.shape[0]), dtype=np.float32)
        for r in range(n):
            lo, hi = X.indptr[r], X.indptr[r + 1]
            z[r] = W_in[:, X.indices[lo:hi]] @ values[lo:hi]
        return self._numpy_head(z)

    def score_items(self, items: Sequence[int]) -> np.ndarray:
        """score() of one item set, without building its sparse row (a binary row, L2-normalised:
        each item weighs 1/sqrt(size))."""
        if self.net is None:
            raise ValueError("model is not fitted")
        idx = np.sort(np.asarray(items, dtype=np.intp))
        W_in = self._weights()["enc_in.weight"]
        values = np.full(idx.size, 1.0 / np.sqrt(max(idx.size, 1)), dtype=np.float32)
        out = self._numpy_head((W_in[:, idx] @ values)[None, :])[0]
        if self.linear is not None and self.alpha:
            out += self.alpha * self.linear.score_items(idx)
        return out

    def _numpy_head(self, z: np.ndarray) -> np.ndarray:
        """From the first layer's products (rows x width, before its bias) to the logits."""
        w, net = self._weights(), self.net
        z += w["enc_in.bias"]
        if net.enc_out is not None:
            z = np.tanh(z) @ w["enc_out.weight"].T + w["enc_out.bias"]
        z = z[:, : net.width] if net.variational else np.tanh(z)  # the mean, in evaluation
        if net.dec_in is not None:
            z = np.tanh(z @ w["dec_in.weight"].T + w["dec_in.bias"])
        logits = z @ w["dec_out.weight"].T
        if net.members > 1:
            logits /= net.members
        logits += w["dec_out.bias"]
        return logits.astype(np.float32, copy=False)

    def save(self, path: Path) -> None:
        state = {k: v.detach().cpu().numpy() for k, v in self.net.state_dict().items()}
        np.savez(Path(path) / "weights.npz", **state)
        if self.linear is not None:
            (Path(path) / LINEAR).mkdir()
            self.linear.save(Path(path) / LINEAR)
        write_manifest(path, self.name, self.get_params(), {"n_items": self.n_items})

    @classmethod
    def load(cls, path: Path) -> AutoEncoder:
        manifest = read_manifest(path)
        params = dict(manifest["params"])
        fitted = {k: params.pop(k, None) for k in ("chosen_lam", "best_epoch", "alpha")}
        model = cls(**params)
        model.chosen_lam, model.alpha = fitted["chosen_lam"], fitted["alpha"]
        model.best_epoch = fitted["best_epoch"] or 0
        model.n_items = int(manifest["n_items"])
        net = model._build(model.n_items)
        with np.load(Path(path) / "weights.npz") as f:
            net.load_state_dict({k: torch.from_numpy(f[k]) for k in f.files})
        model.linear = EASE.load(Path(path) / LINEAR) if (Path(path) / LINEAR).is_dir() else None
        net.eval()
        model.net = net
        model._arrays = None
        return model

    def get_params(self) -> dict[str, Any]:
        return {
            "hidden": self.hidden,
            "latent": self.latent,
            "dropout": self.dropout,
            "lr": self.lr,
            "weight_decay": self.weight_decay,
            "epochs": self.epochs,
            "patience": self.patience,
            "max_updates": self.max_updates,
            "batch_size": self.batch_size,
            "variational": self.variational,
            "beta": self.beta,
            "anneal_epochs": self.anneal_epochs,
            "linear_path": self.linear_path,
            "max_items": self.max_items,
            "seed": self.seed,
            "threads": self.threads,
            "members": self.members,
            "blend": self.blend,
            "linear_lam": self.linear_lam,
            "chosen_lam": self.chosen_lam,
            "best_epoch": self.best_epoch,
            "alpha": self.alpha,
        }

    def peak_bytes(self, shape: DataShape) -> int:
        """Weights with their gradients, two Adam moments and the best epoch's copy (5 x 4 bytes each),
        a batch's logits with their softmax and gradient per member, validation chunks, and the linear
        path when it applies."""
        width = self.latent * self.members * (2 if self.variational else 1)
        weights = 2 * shape.items * (self.hidden or width) + (2 * self.hidden * width if self.hidden else 0)
        batch = self._batch_size(shape.units)
        logits = 16 * batch * shape.items * self.members + 12 * 1024 * shape.items
        need = 20 * weights + logits + 12 * shape.nnz
        if self.linear_path and min(shape.units, shape.items) <= self.max_items and self.blend != 0.0:
            need += EASE(lam=self.linear_lam, max_items=self.max_items).peak_bytes(shape)
        return need

    def refit_copy(self) -> AutoEncoder:
        """The same network for the epoch count early stopping chose (the update cap lifted, so more
        units do not cut it short), with the chosen blend weight and linear-path lambda."""
        fitted = ("chosen_lam", "best_epoch", "alpha")
        params = {k: v for k, v in self.get_params().items() if k not in fitted}
        params.update(
            epochs=max(1, self.best_epoch),
            max_updates=self.RANGES["max_updates"][1],
            blend=self.alpha if self.alpha is not None else 0.0,
            linear_lam=self.chosen_lam if self.alpha else None,
        )
        return AutoEncoder(**params)
