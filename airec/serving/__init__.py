"""Serving: answers from the active model in memory."""

from __future__ import annotations

#: An explanation weighs at most this many input items: the set's last ones (a history's most recent),
#: so explaining a long history costs 50 rows of scores, not one per input.
EXPLAIN_INPUTS = 50
