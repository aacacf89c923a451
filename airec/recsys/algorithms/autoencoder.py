"""The autoencoder recommender: a Mult-DAE / Mult-VAE network (autoencoder_network.py) with an optional
closed-form linear path blended into its logits (autoencoder_linear.py).

Scores are `network logits + linear_weight * (x @ B)`, with B an EASE model fitted on the same rows after
the network is trained and the linear weight chosen on validation (0 = network alone). This module holds
what ties the two together: hyper-parameters and their bounds, the order of a fit, scoring, saving and
loading, warm starts and refits.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import scipy.sparse as sp
import torch

from airec.recsys.algorithms.autoencoder_linear import (
    LINEAR_FOLDER,
    choose_weight,
    fit_linear_path,
    fit_weight,
)
from airec.recsys.algorithms.autoencoder_network import (
    NUMPY_ROWS,
    AutoEncoderNet,
    Schedule,
    numpy_logits,
    numpy_set_logits,
    numpy_set_logits_without_each,
    numpy_weights,
    torch_logits,
    train_network,
)
from airec.recsys.algorithms.ease import EASE
from airec.recsys.base import (
    DataShape,
    FitReport,
    ProgressCallback,
    Recommender,
    read_manifest,
    write_manifest,
)
from airec.recsys.data import as_csr32, fit_matrix
from airec.recsys.evaluation import Pair, selection_metric

#: What a fit chose (saved with the parameters, never passed to the constructor).
FITTED = ("chosen_lam", "best_epoch", "chosen_linear_weight")


#: The folder of a saved model's parameters, one .npy file each.
WEIGHTS_FOLDER = "weights"


def _saved_arrays(path: Path) -> dict[str, np.ndarray]:
    """The saved parameters. One .npy file each (weights/), memory-mapped copy-on-write: every worker
    of a host reads the same pages of the page cache, so the decoder a request streams through is one
    copy in the CPU's shared cache instead of one per worker (a folder is never written again once
    complete, a deleted one stays mapped, and a write into a parameter copies only its page). Models
    saved before that hold one weights.npz, read into memory."""
    folder = path / WEIGHTS_FOLDER
    if folder.is_dir():
        return {file.name[: -len(".npy")]: np.load(file, mmap_mode="c") for file in folder.glob("*.npy")}
    with np.load(path / "weights.npz") as saved:
        return {k: saved[k] for k in saved.files}


def _current_state(arrays: dict[str, np.ndarray]) -> dict[str, torch.Tensor]:
    """A saved state dict in today's layout: models saved before the encoder became item-major hold
    `enc_in.weight` as (width, items); it is today's `enc_in.item_weight` transposed."""
    if "enc_in.weight" in arrays:
        arrays["enc_in.item_weight"] = np.ascontiguousarray(arrays.pop("enc_in.weight").T)
    return {k: torch.from_numpy(v) for k, v in arrays.items()}


class AutoEncoder(Recommender):
    """Multinomial denoising / variational autoencoder over item sets, with its linear path."""

    name = "autoencoder"
    fresh_item_scores = True  # the decoder's product for the call
    #: Manifests written before the linear weight had one name called it `blend` (given) and `alpha`
    #: (chosen); they are still read.
    renamed_params: ClassVar[dict[str, str]] = {"blend": "linear_weight", "alpha": "chosen_linear_weight"}

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
        linear_weight: float | None = None,
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
        self.linear_weight = float(linear_weight) if linear_weight is not None else None
        self.linear_lam = float(linear_lam) if linear_lam is not None else None
        # One thread by default: on a shared 2-core machine two threads were measured 10x slower
        # (oversubscription), and these layers are too small to gain from a second thread.
        self.threads = int(threads) if threads else 1
        self._check_ranges()
        self.net: AutoEncoderNet | None = None
        self.n_items = 0
        self.chosen_lam: float | None = None
        self.best_epoch = 0
        self.chosen_linear_weight: float | None = None  # the linear path's weight in use (given or chosen)
        self.linear_model: EASE | None = None  # the linear path, blended in after training
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
        "linear_weight": (0.0, 1e6),
        "linear_lam": (1e-6, 1e9),
    }

    def _check_ranges(self) -> None:
        for name, (low, high) in self.RANGES.items():
            value = getattr(self, name)
            if value is not None and not low <= value <= high:
                raise ValueError(f"{name} must be between {low} and {high}, got {value}")

    # -- building -------------------------------------------------------------------------------
    def _new_net(self, n_items: int) -> AutoEncoderNet:
        torch.manual_seed(self.seed)
        return self._build(n_items)

    def _build(self, n_items: int) -> AutoEncoderNet:
        return AutoEncoderNet(n_items, self.hidden, self.latent, self.variational, self.members)

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
            net.enc_in.item_weight[dst] = old.net.enc_in.item_weight[src]
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
        """Train the network (early stopping on validation), then fit the linear path and its weight."""
        start = time.perf_counter()
        torch.set_num_threads(self.threads)
        X = fit_matrix(X)
        n_items = X.shape[1]
        if not (self._warm and self.net is not None and self.n_items == n_items):
            self.net = self._new_net(n_items)
        self._warm, self._arrays, self.n_items = False, None, n_items
        # The network trains alone; the linear path is blended in after.
        self.linear_model, self.chosen_linear_weight = None, None
        rng = np.random.default_rng(self.seed)
        torch.manual_seed(self.seed)
        schedule = self._schedule(X.shape[0])
        trained = train_network(self.net, X, schedule, rng, validation=validation, progress=progress)
        stages = {"network": time.perf_counter() - start}
        self.best_epoch, best = trained.best_epoch, trained.best
        report = FitReport(history=trained.history)
        if self._uses_linear_path(*X.shape):
            best = self._add_linear_path(X, validation, rng, report, best, stages)
        report.params = self.get_params()
        report.validation = {
            "val_ndcg": float(best) if np.isfinite(best) else None,
            "best_epoch": self.best_epoch,
            "chosen_linear_weight": self.chosen_linear_weight,
            "seconds": time.perf_counter() - start,
            "stage_seconds": {name: round(seconds, 3) for name, seconds in stages.items()},
        }
        return report

    def _schedule(self, n_rows: int) -> Schedule:
        return Schedule(
            lr=self.lr,
            weight_decay=self.weight_decay,
            dropout=self.dropout,
            variational=self.variational,
            beta=self.beta,
            anneal_epochs=self.anneal_epochs,
            epochs=self.epochs,
            patience=self.patience,
            max_updates=self.max_updates,
            batch_size=self._batch_size(n_rows),
        )

    def _batch_size(self, n_rows: int) -> int:
        """Given, or ~50 updates per epoch within [32, 512]: small data need many small steps."""
        return self.batch_size or int(np.clip(n_rows // 50, 32, 512))

    def _uses_linear_path(self, units: int, items: int) -> bool:
        """On unless switched off, given a zero weight, or too large for an items^2 (or units^2) matrix."""
        return self.linear_path and min(units, items) <= self.max_items and self.linear_weight != 0.0

    def _add_linear_path(
        self,
        X: sp.csr_matrix,
        validation: Pair | None,
        rng: np.random.Generator,
        report: FitReport,
        best: float,
        stages: dict[str, float],
    ) -> float:
        """Fit the linear path and its weight (given, chosen on validation, or fitted on training rows);
        returns the validation metric of what will be scored. Each part's seconds go into `stages`."""
        started = time.perf_counter()
        linear = fit_linear_path(X, validation, self.linear_lam, self.max_items)
        stages["linear_path"] = time.perf_counter() - started
        started = time.perf_counter()
        self.chosen_lam = linear.chosen_lam
        if self.linear_weight is not None:
            weight = self.linear_weight
        elif validation is not None:
            metric = selection_metric(validation[1])
            weight, best = choose_weight(self.score, linear, validation, metric, report)
        else:
            weight = fit_weight(self.net, linear, X, rng)
        self.chosen_linear_weight = weight
        self.linear_model = linear if weight > 0 else None
        stages["linear_weight"] = time.perf_counter() - started
        return best

    # -- inference --------------------------------------------------------------------------------
    def score(self, X: sp.csr_matrix) -> np.ndarray:
        """Network logits, plus linear_weight * (X @ B) when the linear path is on."""
        if self.net is None:
            raise ValueError("model is not fitted")
        X = as_csr32(X)
        if X.shape[0] <= NUMPY_ROWS:
            out = numpy_logits(self.net, self._weights(), X)
        else:
            out = torch_logits(self.net, X)
        if self.linear_model is not None and self.chosen_linear_weight:
            out += self.chosen_linear_weight * self.linear_model.score(X)
        return out

    def score_items(self, items: Sequence[int]) -> np.ndarray:
        """score() of one item set, without building its sparse row."""
        if self.net is None:
            raise ValueError("model is not fitted")
        idx = np.asarray(sorted(items), dtype=np.intp)
        out = numpy_set_logits(self.net, self._weights(), idx)
        if self.linear_model is not None and self.chosen_linear_weight:
            out += self.chosen_linear_weight * self.linear_model.score_items(idx)
        return out

    def drops_without_each(
        self,
        items: Sequence[int],
        left_out: Sequence[int],
        columns: np.ndarray,
        full: np.ndarray | None = None,
    ) -> np.ndarray:
        """Exact leave-one-out drops of `columns`' scores in one batched pass: the network's from the set's
        first-layer sum minus each left-out item's column, the linear path's from each item alone (it is
        linear in its input)."""
        if self.net is None:
            raise ValueError("model is not fitted")
        idx = np.sort(np.asarray(list(set(items)), dtype=np.intp))
        out = np.asarray(left_out, dtype=np.intp)
        whole, without = numpy_set_logits_without_each(self.net, self._weights(), idx, out, columns)
        drops = (whole[None, :] - without).astype(np.float64)
        if self.linear_model is not None and self.chosen_linear_weight:
            drops += self.chosen_linear_weight * self.linear_model.drops_without_each(idx, out, columns)
        return drops

    def _weights(self) -> dict[str, np.ndarray]:
        """The net's parameters as numpy arrays sharing the tensors' memory, made once per fit or load."""
        if self._arrays is None:
            self._arrays = numpy_weights(self.net)
        return self._arrays

    # -- persistence ------------------------------------------------------------------------------
    def save(self, path: Path) -> None:
        folder = Path(path) / WEIGHTS_FOLDER
        folder.mkdir()
        for name, tensor in self.net.state_dict().items():
            np.save(folder / f"{name}.npy", tensor.detach().cpu().numpy())
        if self.linear_model is not None:
            (Path(path) / LINEAR_FOLDER).mkdir()
            self.linear_model.save(Path(path) / LINEAR_FOLDER)
        write_manifest(path, self.name, self.get_params(), {"n_items": self.n_items})

    @classmethod
    def load(cls, path: Path) -> AutoEncoder:
        """A saved model, from this version's manifest or an older one (renamed parameters read)."""
        manifest = read_manifest(path)
        params = cls.current_params(manifest["params"])
        fitted = {k: params.pop(k, None) for k in FITTED}
        model = cls(**params)
        model.chosen_lam, model.chosen_linear_weight = fitted["chosen_lam"], fitted["chosen_linear_weight"]
        model.best_epoch = fitted["best_epoch"] or 0
        model.n_items = int(manifest["n_items"])
        net = model._build(model.n_items)
        net.load_state_dict(_current_state(_saved_arrays(Path(path))), assign=True)
        linear = Path(path) / LINEAR_FOLDER
        model.linear_model = EASE.load(linear) if linear.is_dir() else None
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
            "linear_weight": self.linear_weight,
            "linear_lam": self.linear_lam,
            "chosen_lam": self.chosen_lam,
            "best_epoch": self.best_epoch,
            "chosen_linear_weight": self.chosen_linear_weight,
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
        if self._uses_linear_path(shape.units, shape.items):
            need += EASE(lam=self.linear_lam, max_items=self.max_items).peak_bytes(shape)
        return need

    def refit_copy(self) -> AutoEncoder:
        """The same network for the epoch count early stopping chose (the update cap lifted, so more
        units do not cut it short), with the chosen linear weight and linear-path lambda."""
        params = {k: v for k, v in self.get_params().items() if k not in FITTED}
        weight = self.chosen_linear_weight
        params.update(
            epochs=max(1, self.best_epoch),
            max_updates=self.RANGES["max_updates"][1],
            linear_weight=weight if weight is not None else 0.0,
            linear_lam=self.chosen_lam if weight else None,
        )
        return AutoEncoder(**params)
