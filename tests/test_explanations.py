"""`explain=true` on the autoencoder with its linear path: each `because` contribution is the input's
share of the positive drops of the recommended item's score when each input is left out in turn, checked
against the scores the API itself answers when asked again without each input (issue 17.9)."""

from __future__ import annotations

import numpy as np
import pytest

from airec.serving.served import served_model
from tests.synthetic import ingest, planted, recommend, train

#: A small, fast network with its linear path always blended in (weight fixed, not chosen).
AUTOENCODER = {"epochs": 4, "latent": 16, "linear_weight": 1.0, "linear_lam": 50.0, "seed": 3}


@pytest.fixture
def settings_overrides(settings_overrides: dict) -> dict:
    return {**settings_overrides, "model_poll_seconds": 0}


@pytest.fixture
def autoencoder(client) -> None:
    records, _ = planted(units=200, noise=0.4, seed=5)
    ingest(client, records)
    train(client, {"algorithm": "autoencoder", "params": AUTOENCODER})
    model = served_model.active.model
    assert served_model.active.algorithm == "autoencoder"
    assert model.linear_model is not None and model.chosen_linear_weight == 1.0  # the linear path is on


def _scores(client, items: list[str]) -> dict[str, float]:
    """Every item's score for the set `items`, as the API answers it (k large enough for all)."""
    answer = recommend(client, items, k=1000)
    return {entry["item"]: entry["score"] for entry in answer["items"]}


@pytest.mark.parametrize(
    "inputs",
    [
        ["g1-i0", "g1-i1", "g2-i0", "g5-i3"],
        ["g0-i0", "g0-i2", "g0-i4", "g3-i1", "g3-i2", "g6-i5", "g7-i0"],
    ],
)
def test_autoencoder_because_is_each_inputs_share_of_the_leave_one_out_drops(client, autoencoder, inputs):
    answer = recommend(client, inputs, k=6, explain=True)
    assert answer["model_version"] == served_model.active.version and len(answer["items"]) == 6
    without = {left_out: _scores(client, [j for j in inputs if j != left_out]) for left_out in inputs}
    several = 0
    for entry in answer["items"]:
        proposed = entry["item"]
        drops = np.array([entry["score"] - without[j][proposed] for j in inputs])
        positive = np.clip(drops, 0, None)
        shares = positive / positive.sum()
        expected = [inputs[i] for i in np.argsort(-drops, kind="stable")[:3] if drops[i] > 0]
        assert [b["item"] for b in entry["because"]] == expected, (proposed, drops)
        for because in entry["because"]:
            assert because["contribution"] == pytest.approx(shares[inputs.index(because["item"])], abs=1e-3)
        several += len(entry["because"]) > 1
    assert several, "no proposed item was explained by more than one input: the check would be empty"


def test_linear_models_keep_their_one_row_per_input_shortcut():
    """EASE and item-kNN are linear in their input; the autoencoder, which only holds a linear part, is
    not: the flag says which models serving may explain with the shortcut."""
    from airec.recsys.algorithms import ALGORITHMS

    flags = {name: cls.linear_in_input for name, cls in ALGORITHMS.items()}
    assert flags == {"popularity": False, "itemknn": True, "ease": True, "autoencoder": False}
