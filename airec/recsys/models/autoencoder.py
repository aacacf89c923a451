"""Mult-DAE / Mult-VAE (Liang et al. 2018) with an optional closed-form linear skip path.

Network: L2-normalised input -> dropout -> tanh hidden -> latent (mean/log-variance when
variational) -> tanh hidden -> item logits, trained with the multinomial log-likelihood on sparse
row batches (only a batch is ever dense). Optionally the logits get `alpha * (x @ B)` added, where B
is an EASE item-item matrix fitted in closed form on the same training rows (lambda chosen on
validation): the linear path captures item-to-item co-occurrence cheaply, the network learns what
it misses. Early stopping watches a validation ranking metric and keeps the best weights.
"""
from __future__ import annotations

import copy
import os
import time
from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse as sp
import torch
from torch import nn

from airec.recsys.base import FitReport, ProgressCallback, Recommender, read_manifest, write_manifest
from airec.recsys.data import binarize
from airec.recsys.evaluation import selection_metric, validation_score
from airec.recsys.models.ease import EASE

Pair = tuple[sp.csr_matrix, sp.csr_matrix]


class _Net(nn.Module):
    def __init__(self, n_items: int, hidden: int, latent: int, variational: bool, dropout: float) -> None:
        super().__init__()
        self.variational = variational
        self.enc_in = nn.Linear(n_items, hidden)
        self.enc_out = nn.Linear(hidden, 2 * latent if variational else latent)
        self.dec_in = nn.Linear(latent, hidden)
        self.dec_out = nn.Linear(hidden, n_items)
        self.drop = nn.Dropout(dropout)
        # Weight of the linear path (log scale); set after training, not learned by gradient.
        self.log_alpha = nn.Parameter(torch.tensor(0.0), requires_grad=False)
        self.latent = latent
        self.register_buffer("B", torch.zeros(0, 0), persistent=False)

    def forward(self, x: torch.Tensor, keep: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Logits and KL term; `keep` is the input-dropout mask used in training (None at inference)."""
        if keep is not None:
            x = x * keep
        h = torch.nn.functional.normalize(x, dim=1)
        h = torch.tanh(self.enc_in(h))
        z = self.enc_out(h)
        kl = torch.zeros((), device=x.device)
        if self.variational:
            mu, logvar = z[:, : self.latent], z[:, self.latent:]
            if self.training:
                z = mu + torch.randn_like(mu) * torch.exp(0.5 * logvar)
            else:
                z = mu
            kl = 0.5 * torch.mean(torch.sum(mu ** 2 + logvar.exp() - 1.0 - logvar, dim=1))
        else:
            z = torch.tanh(z)
        logits = self.dec_out(torch.tanh(self.dec_in(z)))
        if self.B.numel():
            logits = logits + self.log_alpha.exp() * (x @ self.B)
        return logits, kl


def _dense(X: sp.csr_matrix) -> torch.Tensor:
    return torch.from_numpy(np.asarray(X.toarray(), dtype=np.float32))


class AutoEncoder(Recommender):
    """Multinomial denoising / variational autoencoder over item sets."""

    name = "autoencoder"

    def __init__(
        self,
        hidden: int = 600,
        latent: int = 200,
        dropout: float = 0.5,
        lr: float = 1e-3,
        weight_decay: float = 0.0,
        epochs: int = 50,
        patience: int = 5,
        batch_size: int | None = None,
        variational: bool = False,
        beta: float = 0.2,
        anneal_epochs: int = 10,
        linear_path: bool = True,
        max_items: int = 20000,
        seed: int = 0,
        threads: int | None = None,
    ) -> None:
        self.hidden, self.latent, self.dropout = int(hidden), int(latent), float(dropout)
        self.lr, self.weight_decay = float(lr), float(weight_decay)
        self.epochs, self.patience = int(epochs), int(patience)
        self.batch_size = int(batch_size) if batch_size else None
        self.variational, self.beta, self.anneal_epochs = bool(variational), float(beta), int(anneal_epochs)
        self.linear_path, self.max_items = bool(linear_path), int(max_items)
        self.seed = int(seed)
        self.threads = int(threads) if threads else min(2, os.cpu_count() or 1)
        self.net: _Net | None = None
        self.n_items = 0
        self.chosen_lam: float | None = None
        self.best_epoch = 0
        self.alpha: float | None = None  # chosen weight of the linear path
        self._warm = False

    # -- building -------------------------------------------------------------------------------
    def _new_net(self, n_items: int) -> _Net:
        torch.manual_seed(self.seed)
        net = _Net(n_items, self.hidden, self.latent, self.variational, self.dropout)
        return net

    def warm_start_from(self, old: AutoEncoder, old_index_for_new: np.ndarray) -> None:
        """Initialise from a trained model over an older catalogue before `fit`.

        `old_index_for_new[j]` is the old column of new item j, or -1 for an item the old model never
        saw: known items keep their input and output weights, new items get fresh ones, and the
        hidden layers are copied whole (so sizes must match).
        """
        if old.net is None:
            raise ValueError("the old model is not fitted")
        if (old.hidden, old.latent, old.variational) != (self.hidden, self.latent, self.variational):
            raise ValueError("warm start needs the same hidden/latent sizes and the same variational flag")
        mapping = np.asarray(old_index_for_new, dtype=np.int64)
        net = self._new_net(mapping.size)
        known = np.flatnonzero(mapping >= 0)
        src = torch.from_numpy(mapping[known])
        dst = torch.from_numpy(known)
        with torch.no_grad():
            net.enc_in.weight[:, dst] = old.net.enc_in.weight[:, src]
            net.enc_in.bias.copy_(old.net.enc_in.bias)
            net.dec_out.weight[dst] = old.net.dec_out.weight[src]
            net.dec_out.bias[dst] = old.net.dec_out.bias[src]
            for name in ("enc_out", "dec_in"):
                getattr(net, name).load_state_dict(getattr(old.net, name).state_dict())
            net.log_alpha.copy_(old.net.log_alpha)
        self.net, self.n_items, self._warm = net, mapping.size, True

    # -- training -------------------------------------------------------------------------------
    def _fit_linear(self, X: sp.csr_matrix, validation: Pair | None) -> np.ndarray:
        ease = EASE(max_items=self.max_items)
        ease.fit(X, validation=validation)
        self.chosen_lam = ease.chosen_lam
        return ease.B

    def fit(
        self,
        X: sp.csr_matrix,
        *,
        validation: Pair | None = None,
        progress: ProgressCallback | None = None,
    ) -> FitReport:
        start = time.perf_counter()
        torch.set_num_threads(self.threads)
        X = binarize(X)
        n_items = X.shape[1]
        if not (self._warm and self.net is not None and self.n_items == n_items):
            self.net = self._new_net(n_items)
        self._warm = False
        self.n_items = n_items
        net = self.net
        use_linear = self.linear_path and n_items <= self.max_items
        B = self._fit_linear(X, validation) if use_linear else None
        net.B = torch.zeros(0, 0)  # the network trains alone; the linear path is blended in after
        rng = np.random.default_rng(self.seed)
        torch.manual_seed(self.seed)
        opt = torch.optim.Adam(net.parameters(), lr=self.lr, weight_decay=self.weight_decay)
        metric = selection_metric(validation[1]) if validation is not None else None
        n_batches = max(1, int(np.ceil(X.shape[0] / self._batch_size(X.shape[0]))))
        anneal_steps = max(1, self.anneal_epochs * n_batches)
        report = FitReport()
        best, best_state, bad, step = -np.inf, None, 0, 0
        for epoch in range(1, self.epochs + 1):
            net.train()
            total = 0.0
            for idx in np.array_split(rng.permutation(X.shape[0]), n_batches):
                x = _dense(X[idx])
                keep = (torch.rand_like(x) >= self.dropout).float() if self.dropout > 0 else None
                logits, kl = net(x, keep)
                nll = -(torch.log_softmax(logits, dim=1) * x).sum(dim=1).mean()
                beta = self.beta * min(1.0, step / anneal_steps) if self.variational else 0.0
                loss = nll + beta * kl
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                total += float(nll.detach()) * len(idx)
                step += 1
            entry = {"epoch": epoch, "max_epochs": self.epochs, "train_loss": total / X.shape[0]}
            if validation is not None:
                entry["val_loss"] = self._val_loss(validation)
                entry["val_ndcg"] = validation_score(self.score, validation, metric)
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
        if B is not None:
            net.B = torch.from_numpy(B)
            if validation is not None:
                best = self._choose_alpha(validation, metric, report)
            else:
                self._init_alpha(X, rng)
        report.params = self.get_params()
        report.validation = {"val_ndcg": float(best) if np.isfinite(best) else None,
                             "best_epoch": self.best_epoch, "alpha": self.alpha,
                             "seconds": time.perf_counter() - start}
        return report

    def _batch_size(self, n_rows: int) -> int:
        """Given, or ~50 updates per epoch within [32, 512]: small data need many small steps."""
        return self.batch_size or int(np.clip(n_rows // 50, 32, 512))

    def _choose_alpha(self, validation: Pair, metric: str, report: FitReport) -> float:
        """Weight of the linear path picked on validation (0 = network alone); the two parts are
        scored once and only their sum is re-ranked per candidate weight."""
        from airec.recsys.metrics import per_row_metrics

        X_in, X_hid = validation
        net = self.net
        B = net.B
        net.B = torch.zeros(0, 0)
        deep = self.score(X_in)
        net.B = B
        lin = np.asarray(sp.csr_matrix(X_in, dtype=np.float32) @ B.numpy(), dtype=np.float32)
        k = int(metric.split("@")[1])
        best_a, best = 0.0, -np.inf
        for a in np.concatenate([[0.0], np.geomspace(0.1, 1000.0, 21)]):
            value = float(per_row_metrics(deep + a * lin, X_in, X_hid, [k])[metric].mean())
            report.history.append({"alpha": float(a), "val_ndcg": value})
            if value > best + 1e-9:
                best_a, best = float(a), value
        net.log_alpha.fill_(float(np.log(best_a)) if best_a > 0 else -30.0)
        if best_a == 0.0:
            net.B = torch.zeros(0, 0)
        self.alpha = best_a
        return best

    def _init_alpha(self, X: sp.csr_matrix, rng: np.random.Generator) -> None:
        """Scale the linear path so that its softmax fits the (corrupted) training rows best: a badly
        scaled path would be drowned by the item biases in the first epochs."""
        net = self.net
        rows = rng.choice(X.shape[0], size=min(X.shape[0], 2000), replace=False)
        x = _dense(X[np.sort(rows)])
        keep = (torch.rand_like(x) >= self.dropout).float() if self.dropout > 0 else torch.ones_like(x)
        with torch.no_grad():
            base = net(x, keep)[0] - net.log_alpha.exp() * ((x * keep) @ net.B)
            lin = (x * keep) @ net.B
            grid = np.geomspace(0.5, 500.0, 25)
            nll = [float(-(torch.log_softmax(base + a * lin, dim=1) * x).sum(1).mean()) for a in grid]
            self.alpha = float(grid[int(np.argmin(nll))])
            net.log_alpha.fill_(float(np.log(self.alpha)))

    def _val_loss(self, validation: Pair) -> float:
        """Multinomial NLL of each validation unit's full item set given its input items."""
        X_in, X_hid = validation
        net = self.net
        net.eval()
        total, n = 0.0, 0
        with torch.inference_mode():
            for s in range(0, X_in.shape[0], 1024):
                x_in, target = _dense(X_in[s:s + 1024]), _dense(X_in[s:s + 1024] + X_hid[s:s + 1024])
                logits, _ = net(x_in)
                total += float(-(torch.log_softmax(logits, dim=1) * target).sum())
                n += x_in.shape[0]
        net.train()
        return total / max(n, 1)

    # -- inference --------------------------------------------------------------------------------
    def score(self, X: sp.csr_matrix) -> np.ndarray:
        if self.net is None:
            raise ValueError("model is not fitted")
        was_training = self.net.training
        self.net.eval()
        out = np.empty((X.shape[0], self.n_items), dtype=np.float32)
        with torch.inference_mode():
            for s in range(0, X.shape[0], 1024):
                logits, _ = self.net(_dense(sp.csr_matrix(X[s:s + 1024], dtype=np.float32)))
                out[s:s + logits.shape[0]] = logits.numpy()
        self.net.train(was_training)
        return out

    def save(self, path: Path) -> None:
        state = {k: v.detach().cpu().numpy() for k, v in self.net.state_dict().items()}
        np.savez(Path(path) / "weights.npz", **state)
        if self.net.B.numel():
            np.save(Path(path) / "linear.npy", self.net.B.numpy())
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
        net = _Net(model.n_items, model.hidden, model.latent, model.variational, model.dropout)
        with np.load(Path(path) / "weights.npz") as f:
            net.load_state_dict({k: torch.from_numpy(f[k]) for k in f.files})
        linear = Path(path) / "linear.npy"
        if linear.exists():
            net.B = torch.from_numpy(np.load(linear))
        net.eval()
        model.net = net
        return model

    def get_params(self) -> dict[str, Any]:
        return {
            "hidden": self.hidden, "latent": self.latent, "dropout": self.dropout, "lr": self.lr,
            "weight_decay": self.weight_decay, "epochs": self.epochs, "patience": self.patience,
            "batch_size": self.batch_size, "variational": self.variational, "beta": self.beta,
            "anneal_epochs": self.anneal_epochs, "linear_path": self.linear_path, "max_items": self.max_items,
            "seed": self.seed, "threads": self.threads, "chosen_lam": self.chosen_lam,
            "best_epoch": self.best_epoch, "alpha": self.alpha,
        }
