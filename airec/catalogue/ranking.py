"""Ranking under the catalogue's rules: the model's scores with the blocked items masked out before the
top-k, the shortfall filled from popularity under the same rules, and `filtered` counted."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from airec.serving.active import ActiveModel, top_k


def _removed(n: int, blocked: np.ndarray | None, exclude: Sequence[int]) -> np.ndarray | None:
    """Items a rule removes (blocked by the catalogue, or excluded by the request)."""
    if blocked is None and not len(exclude):
        return None
    removed = blocked.copy() if blocked is not None else np.zeros(n, dtype=bool)
    removed[list(exclude)] = True
    return removed


def count_filtered(ranked: np.ndarray, removed: np.ndarray | None, answer: np.ndarray, k: int) -> int:
    """How many removed candidates ranked above the answer's last item (all of them when the answer
    came short of k). `ranked` holds the candidates' scores, -inf for those never candidates."""
    if removed is None:
        return 0
    candidates = removed & np.isfinite(ranked)
    if len(answer) >= k:
        candidates &= ranked > ranked[answer[-1]]
    return int(np.count_nonzero(candidates))


def _popular_fill(
    model: ActiveModel, k: int, removed: np.ndarray | None, taken: Sequence[int]
) -> tuple[np.ndarray, np.ndarray]:
    """The k most popular items no rule removed and not in `taken`; and the popularity ranking."""
    ranked = model.popularity.astype(np.float64)
    ranked[list(taken)] = -np.inf
    allowed = ranked.copy()
    if removed is not None:
        allowed[removed] = -np.inf
    return top_k(allowed, k), ranked


def _entries(model: ActiveModel, best: np.ndarray, scores: np.ndarray) -> list[dict]:
    items = model.items
    return [
        {"item": items[i], "score": score}
        for i, score in zip(best.tolist(), scores[best].tolist(), strict=True)
    ]


def popular_within(
    model: ActiveModel, k: int, *, inputs: Sequence[int], exclude: Sequence[int], blocked: np.ndarray | None
) -> tuple[list[dict], int]:
    """The popularity fallback under the rules: (answer, filtered). The input items are no candidates."""
    removed = _removed(model.n_items, blocked, exclude)
    best, ranked = _popular_fill(model, k, removed, inputs)
    total = float(model.popularity.sum()) or 1.0
    answer = [{"item": model.items[i], "score": float(model.popularity[i] / total)} for i in best]
    return answer, count_filtered(ranked, removed, best, k)


def rank_within(
    model: ActiveModel,
    indices: list[int],
    k: int,
    *,
    exclude: Sequence[int] = (),
    blocked: np.ndarray | None = None,
    explain: bool = False,
) -> tuple[list[dict], int, bool]:
    """The model's top-k completion of `indices` with removed items masked out inside the scores, then
    popular items under the same rules if the model's ranking ran short: (answer, filtered, filled)."""
    ranked = model.score_set(indices)  # a fresh array, masked in place: top_k never picks a masked
    ranked[list(indices)] = -np.inf  # (-inf) item, so ranked[best] are the model's own scores
    removed = _removed(model.n_items, blocked, exclude)
    masked = ranked  # only a rule's mask needs a copy: `ranked` is what count_filtered reads
    if removed is not None:
        masked = ranked.copy()
        masked[removed] = -np.inf
    best = top_k(masked, k)
    answer = _entries(model, best, ranked)
    if explain and len(indices) > 0:
        for entry, because in zip(
            answer, model.explain(indices, best, ranked[best].astype(np.float64)), strict=True
        ):
            entry["because"] = because
    filtered = count_filtered(ranked, removed, best, k)
    if len(best) >= k:
        return answer, filtered, False
    extra, _ = _popular_fill(model, k - len(best), removed, [*indices, *best.tolist()])
    if not len(extra):
        return answer, filtered, False
    total = float(model.popularity.sum()) or 1.0
    answer += [{"item": model.items[i], "score": float(model.popularity[i] / total)} for i in extra]
    return answer, filtered, True
