"""Shared fixtures for the ML core tests: a synthetic matrix with a planted block structure."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp

from airec.recsys.data import build_matrix

N_BLOCKS = 5
BLOCK = 10


def block_matrix(n_units: int = 400, seed: int = 0) -> sp.csr_matrix:
    """Units each draw 4-8 items from a single block of BLOCK items (items 0-9, 10-19, ...)."""
    rng = np.random.default_rng(seed)
    units, items = [], []
    for u in range(n_units):
        block = u % N_BLOCKS
        chosen = rng.choice(BLOCK, size=rng.integers(4, 9), replace=False) + block * BLOCK
        units.extend([u] * len(chosen))
        items.extend(chosen.tolist())
    return build_matrix(np.array(units), np.array(items), n_items=N_BLOCKS * BLOCK)


@pytest.fixture(scope="session")
def blocks() -> sp.csr_matrix:
    return block_matrix()
