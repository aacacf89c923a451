"""Re-evaluate the active model on exactly the held-out units it was trained without.

The training split is a pure function of (data up to the manifest's last interaction id in canonical
order, preprocessing, protocol, holdout fraction and cap, seed), so rebuilding it here gives the same
test units and hidden items, and the numbers match the manifest's and the benchmark's
(`airec bench accuracy --file ... --seed-offset SEED`) for the same data and seed.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from airec.recsys.evaluation import MAX_HOLDOUT, evaluate, make_split
from airec.recsys.models import ALGORITHMS
from airec.serving.active import ActiveModel
from airec.training.dataset import load_dataset, preprocessed
from airec.training.fitting import EVAL_KS


class NothingToEvaluate(Exception):
    pass


def _to_vocab(X: sp.csr_matrix, data_items: list[str], model: ActiveModel) -> sp.csr_matrix:
    """Reorder columns from the rebuilt data's item order into the model's."""
    columns = np.array([model.index.get(name, -1) for name in data_items], dtype=np.int64)
    coo = X.tocoo()
    keep = columns[coo.col] >= 0
    return sp.csr_matrix(
        (coo.data[keep], (coo.row[keep], columns[coo.col[keep]])), shape=(X.shape[0], model.n_items)
    )


def evaluate_active(*, model: ActiveModel | None, k: int = 10) -> dict:
    """Hit rate, NDCG and recall at k for the active model and a popularity baseline."""
    if model is None:
        raise NothingToEvaluate("no model is active yet: train one first (POST /api/v1/training)")
    data_info = model.manifest.get("data") or {}
    split_info = model.manifest.get("split") or {}
    if "last_interaction_id" not in data_info or "seed" not in split_info:
        raise NothingToEvaluate(f"model {model.version} has no split information in its manifest")
    # Manifests from before canonical order and preprocessing: id order, every item, cap 5000.
    data = load_dataset(
        upto_id=int(data_info["last_interaction_id"]), canonical=split_info.get("order") == "canonical"
    )
    prep = model.manifest.get("preprocessing") or {}
    data = preprocessed(
        data, min_support=int(prep.get("min_item_support") or 1), max_items=prep.get("max_items")
    )
    split = make_split(
        data.X,
        split_info.get("protocol", "auto"),
        holdout_fraction=float(split_info.get("holdout_fraction", 0.1)),
        max_holdout=split_info.get("max_holdout", MAX_HOLDOUT),
        seed=int(split_info["seed"]),
    )
    X_in, X_hidden = (_to_vocab(m, data.items, model) for m in split.test)
    popularity = ALGORITHMS["popularity"]()
    popularity.fit(_to_vocab(split.train, data.items, model))
    # The same cut-offs as at training time: the top-k of tied scores depends on the largest k asked
    # for, so asking for k alone could break ties differently from the manifest's numbers.
    ks = tuple(sorted(set(EVAL_KS) | {k}))

    def pick(metrics: dict) -> dict:
        return {
            name: metrics[f"{name}@{k}"]
            for name in ("hit_rate", "ndcg", "recall")
            if f"{name}@{k}" in metrics
        }

    model_metrics = evaluate(model.model, X_in, X_hidden, ks=ks)
    return {
        "model_version": model.version,
        "algorithm": model.algorithm,
        "protocol": split.protocol,
        "k": k,
        "units": model_metrics["n_units"],
        "model": pick(model_metrics),
        "popularity": pick(evaluate(popularity, X_in, X_hidden, ks=ks)),
    }
