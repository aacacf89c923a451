"""The autoencoder's network (Mult-DAE / Mult-VAE, Liang et al. 2018), its training loop, and its
scoring in numpy for the few rows a request asks.

Network (default Mult-DAE [I -> 200 -> I]; `hidden` adds layers, `variational` makes it a Mult-VAE):
L2-normalised input -> input dropout -> tanh code -> item logits, trained with the multinomial
log-likelihood on sparse row batches (only a batch of logits is ever dense). Early stopping watches
the validation ranking metric and keeps the best weights. `members=k` trains k one-layer nets side by
side, each on its own softmax, and averages their logits: on ml-100k / ml-latest-small the network
alone gained ~0.007 NDCG@100 with k=5 (every seed), at about 4x the training time.

The linear path blended into the network's logits lives in autoencoder_linear.py.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import NamedTuple

import numpy as np
import scipy.sparse as sp
import torch
import torch.nn.functional as F
from torch import nn

from airec.recsys.base import ProgressCallback
from airec.recsys.data import binarize
from airec.recsys.evaluation import Pair, selection_metric
from airec.recsys.metrics import per_row_metrics

#: Up to this many rows are scored in numpy on the weights' own memory: a request's one row (or an
#: explanation's few) cost ~0.1 ms there against ~0.8 ms through torch's sparse and module machinery.
#: Bigger batches (validation, evaluation) go through torch.
NUMPY_ROWS = 64


class SparseBatch(NamedTuple):
    """A batch of rows as embedding_bag takes it: the stored entries' item indices and values in row
    order, and where each row starts."""

    items: torch.Tensor  # int64, one per entry
    offsets: torch.Tensor  # int64, one per row
    values: torch.Tensor  # float32, one per entry


class ItemEncoder(nn.Module):
    """The first layer, item-major: `item_weight[i]` is item i's input vector and a row's product is the
    weighted sum of its items' vectors (embedding_bag). Measured against torch.sparse.mm over the
    (out, items) weight of an nn.Linear, at 20,000 items and 512-row batches, the forward and backward
    pass took 57-139 ms against 201-319 ms; a request's gather reads contiguous rows too.
    Initialised exactly as nn.Linear(n_items, out) is (same draws, transposed)."""

    def __init__(self, n_items: int, out: int) -> None:
        super().__init__()
        linear = nn.Linear(n_items, out)
        self.item_weight = nn.Parameter(linear.weight.detach().t().contiguous())
        self.bias = nn.Parameter(linear.bias.detach().clone())

    def forward(self, xs: SparseBatch) -> torch.Tensor:
        summed = F.embedding_bag(
            xs.items, self.item_weight, xs.offsets, mode="sum", per_sample_weights=xs.values
        )
        return summed + self.bias


class AutoEncoderNet(nn.Module):
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
        self.enc_in = ItemEncoder(n_items, hidden or code)
        self.enc_out = nn.Linear(hidden, code) if hidden else None
        self.dec_in = nn.Linear(latent, hidden) if hidden else None
        self.dec_out = nn.Linear(hidden or width, n_items)
        if members > 1:  # each member's decoder block initialised as a net of its own
            bound = 1.0 / np.sqrt(latent)
            nn.init.uniform_(self.dec_out.weight, -bound, bound)
            nn.init.uniform_(self.dec_out.bias, -bound, bound)

    def forward(self, xs: SparseBatch, per_member: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
        """Logits and KL term from a sparse, already normalised (and corrupted) input batch; with
        `per_member`, logits are (members, rows, items), otherwise the members' mean."""
        z = self.enc_in(xs)
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


def sparse_input(
    X: sp.csr_matrix, dropout: float = 0.0, rng: np.random.Generator | None = None
) -> SparseBatch:
    """The rows as a SparseBatch: input dropout on the stored entries, then rows L2-normalised."""
    X = sp.csr_matrix(X, dtype=np.float32)
    n = X.shape[0]
    rows = np.repeat(np.arange(n), np.diff(X.indptr))
    cols, vals = X.indices, X.data.astype(np.float32)
    if dropout > 0 and rng is not None:
        kept = rng.random(vals.size) >= dropout
        rows, cols, vals = rows[kept], cols[kept], vals[kept]
    norms = np.sqrt(np.bincount(rows, weights=vals**2, minlength=n))
    vals = vals / np.maximum(norms[rows], 1e-12)
    offsets = np.searchsorted(rows, np.arange(n))  # rows are in order; an emptied row is an empty bag
    return SparseBatch(
        torch.from_numpy(cols.astype(np.int64)),
        torch.from_numpy(offsets.astype(np.int64)),
        torch.from_numpy(vals.astype(np.float32)),
    )


def nll(logits: torch.Tensor, X: sp.csr_matrix) -> torch.Tensor:
    """Summed multinomial negative log-likelihood of the rows' items (gathered, never densified);
    logits of shape (members, rows, items) give the members' mean."""
    rows = torch.from_numpy(np.repeat(np.arange(X.shape[0]), np.diff(X.indptr)))
    cols = torch.from_numpy(X.indices.astype(np.int64))
    if logits.dim() == 3:
        return -torch.log_softmax(logits, dim=2)[:, rows, cols].sum() / logits.shape[0]
    return -torch.log_softmax(logits, dim=1)[rows, cols].sum()


# -- training ---------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Schedule:
    """How the network is trained: the optimiser, the corruption, the KL annealing and when to stop."""

    lr: float
    weight_decay: float
    dropout: float
    variational: bool
    beta: float
    anneal_epochs: int
    epochs: int
    patience: int
    max_updates: int
    batch_size: int


@dataclass
class Trained:
    """What the training loop reports: one history entry per epoch, and the epoch whose weights it kept
    (the best on validation, else the last) with its validation metric (-inf without validation)."""

    history: list[dict] = field(default_factory=list)
    best_epoch: int = 0
    best: float = -np.inf


def train_network(
    net: AutoEncoderNet,
    X: sp.csr_matrix,
    schedule: Schedule,
    rng: np.random.Generator,
    *,
    validation: Pair | None = None,
    progress: ProgressCallback | None = None,
) -> Trained:
    """Train `net` on the binary rows X with early stopping on validation; the best epoch's weights are
    loaded back and the net is left in evaluation mode."""
    # fused: the same update in one kernel per tensor; on a 16k-item catalogue a step over the
    # encoder and decoder took 42 ms of a 280 ms batch unfused, about 6 ms fused.
    opt = torch.optim.Adam(net.parameters(), lr=schedule.lr, weight_decay=schedule.weight_decay, fused=True)
    metric = selection_metric(validation[1]) if validation is not None else None
    n_batches = max(1, int(np.ceil(X.shape[0] / schedule.batch_size)))
    # Cap on optimiser updates: big data converge in a few epochs, small data get many.
    max_epochs = min(schedule.epochs, max(1, int(np.ceil(schedule.max_updates / n_batches))))
    trained, best_state, bad = Trained(), None, 0
    for epoch in range(1, max_epochs + 1):
        loss = _train_epoch(net, opt, X, schedule, rng, n_batches, step=(epoch - 1) * n_batches)
        entry = {"epoch": epoch, "max_epochs": max_epochs, "train_loss": loss}
        if validation is not None:
            entry["val_loss"], entry["val_ndcg"] = validate(net, validation, metric)
            if entry["val_ndcg"] > trained.best:
                trained.best, bad, trained.best_epoch = entry["val_ndcg"], 0, epoch
                best_state = copy.deepcopy(net.state_dict())
            else:
                bad += 1
        trained.history.append(entry)
        if progress:
            progress(dict(entry))
        if validation is not None and bad >= schedule.patience:
            break
    if best_state is not None:
        net.load_state_dict(best_state)
    else:
        trained.best_epoch = len(trained.history)
    net.eval()
    return trained


def _train_epoch(
    net: AutoEncoderNet,
    opt: torch.optim.Optimizer,
    X: sp.csr_matrix,
    schedule: Schedule,
    rng: np.random.Generator,
    n_batches: int,
    step: int,
) -> float:
    """One pass over the rows in shuffled batches; returns the mean training loss per row. `step` counts
    the updates made before this epoch (the KL weight anneals over them)."""
    net.train()
    anneal_steps = max(1, schedule.anneal_epochs * n_batches)
    total = 0.0
    for idx in np.array_split(rng.permutation(X.shape[0]), n_batches):
        batch = X[np.sort(idx)]
        logits, kl = net(sparse_input(batch, schedule.dropout, rng), per_member=True)
        loss = nll(logits, batch) / batch.shape[0]
        beta = schedule.beta * min(1.0, step / anneal_steps) if schedule.variational else 0.0
        opt.zero_grad(set_to_none=True)
        (loss + beta * kl).backward()
        opt.step()
        total += float(loss.detach()) * batch.shape[0]
        step += 1
    return total / max(X.shape[0], 1)


def validate(net: AutoEncoderNet, validation: Pair, metric: str) -> tuple[float, float]:
    """Validation loss (multinomial NLL per unit of each unit's full item set given its input items)
    and ranking metric, from one forward pass per chunk: the network alone is being trained, so its
    logits are what scoring would rank."""
    X_in, X_hid = validation
    k = int(metric.split("@")[1])
    net.eval()
    total, values = 0.0, []
    with torch.inference_mode():
        for s in range(0, X_in.shape[0], 1024):
            x_in, x_hid = X_in[s : s + 1024], X_hid[s : s + 1024]
            logits, _ = net(sparse_input(x_in))
            total += float(nll(logits, binarize(x_in + x_hid)))
            values.append(per_row_metrics(logits.numpy(), x_in, x_hid, [k])[metric])
    net.train()
    return total / max(X_in.shape[0], 1), float(np.concatenate(values).mean())


# -- scoring ----------------------------------------------------------------------------------------
def torch_logits(net: AutoEncoderNet, X: sp.csr_matrix) -> np.ndarray:
    """The network's logits for many rows, a chunk of rows at a time through torch."""
    was_training = net.training
    net.eval()
    out = np.empty((X.shape[0], net.dec_out.out_features), dtype=np.float32)
    with torch.inference_mode():
        for s in range(0, X.shape[0], 1024):
            logits, _ = net(sparse_input(X[s : s + 1024]))
            out[s : s + logits.shape[0]] = logits.numpy()
    net.train(was_training)
    return out


def numpy_weights(net: AutoEncoderNet) -> dict[str, np.ndarray]:
    """The net's parameters as numpy arrays sharing the tensors' memory (no copy)."""
    return {k: v.detach().numpy() for k, v in net.state_dict().items()}


def numpy_logits(net: AutoEncoderNet, w: dict[str, np.ndarray], X: sp.csr_matrix) -> np.ndarray:
    """AutoEncoderNet.forward in evaluation mode, in numpy: the encoder gathers the weight rows of each
    row's items (rows L2-normalised as in sparse_input), the decoder is one BLAS product."""
    n = X.shape[0]
    sizes = np.diff(X.indptr)
    rows = np.repeat(np.arange(n), sizes)
    norms = np.sqrt(np.bincount(rows, weights=X.data.astype(np.float64) ** 2, minlength=n))
    values = (X.data / np.maximum(norms[rows], 1e-12)).astype(np.float32)
    W_in = w["enc_in.item_weight"]
    z = np.empty((n, W_in.shape[1]), dtype=np.float32)
    for r in range(n):
        lo, hi = X.indptr[r], X.indptr[r + 1]
        z[r] = values[lo:hi] @ W_in[X.indices[lo:hi]]
    return numpy_head(net, w, z)


def numpy_set_logits(net: AutoEncoderNet, w: dict[str, np.ndarray], idx: np.ndarray) -> np.ndarray:
    """The logits of one item set (a binary row, L2-normalised: each item weighs 1/sqrt(size)),
    without building its sparse row."""
    values = np.full(idx.size, 1.0 / np.sqrt(max(idx.size, 1)), dtype=np.float32)
    return numpy_head(net, w, (values @ w["enc_in.item_weight"][idx])[None, :])[0]


def numpy_set_logits_without_each(
    net: AutoEncoderNet, w: dict[str, np.ndarray], idx: np.ndarray, left_out: np.ndarray, columns: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """The logits of `columns` for the set `idx`, and for the set without each item of `left_out` in turn,
    in one batch: a binary row's first-layer product is the sum of its items' weight rows over
    sqrt(size), so leaving item j out subtracts j's row from the set's sum. Equal (to float rounding)
    to scoring each smaller set on its own, at the cost of one set's gather and a small decoder product."""
    W_in = w["enc_in.item_weight"]
    total = W_in[idx].sum(axis=0, dtype=np.float64)
    without = (total[None, :] - W_in[left_out]) / np.sqrt(max(idx.size - 1, 1))
    z = np.vstack([total[None, :] / np.sqrt(idx.size), without]).astype(np.float32)
    logits = numpy_head(net, w, z, columns)
    return logits[0], logits[1:]


def numpy_head(
    net: AutoEncoderNet, w: dict[str, np.ndarray], z: np.ndarray, columns: np.ndarray | None = None
) -> np.ndarray:
    """From the first layer's products (rows x width, before its bias) to the logits (of `columns` only,
    when given: the decoder multiplies only their rows)."""
    z += w["enc_in.bias"]
    if net.enc_out is not None:
        z = np.tanh(z) @ w["enc_out.weight"].T + w["enc_out.bias"]
    z = z[:, : net.width] if net.variational else np.tanh(z)  # the mean, in evaluation
    if net.dec_in is not None:
        z = np.tanh(z @ w["dec_in.weight"].T + w["dec_in.bias"])
    W_out, bias = w["dec_out.weight"], w["dec_out.bias"]
    if columns is not None:
        W_out, bias = W_out[columns], bias[columns]
    logits = z @ W_out.T
    if net.members > 1:
        logits /= net.members
    logits += bias
    return logits.astype(np.float32, copy=False)
