"""Strict JSON parsing: refuse what other parsers would read differently or we cannot store."""

from __future__ import annotations

import json
import math
import re
from typing import Any

#: Deeper JSON than this is refused: no request shape here needs more than 4 levels.
MAX_JSON_DEPTH = 32
#: Integers longer than this (in digits) are refused before Python spends time converting them.
MAX_INT_DIGITS = 19
_LONE_SURROGATE = re.compile("[\ud800-\udfff]")


class InvalidJSON(ValueError):
    """A request body we refuse to interpret; the message says why, for a 400 answer."""


def _refuse_constant(name: str) -> Any:
    raise InvalidJSON(f"{name} is not a JSON number.")


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise InvalidJSON(f"The number {text[:20]} is out of range.")
    return value


def _bounded_int(text: str) -> int:
    if len(text.lstrip("-")) > MAX_INT_DIGITS:
        raise InvalidJSON(f"The number {text[:20]}... is out of range.")
    return int(text)


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict:
    out = dict(pairs)
    if len(out) != len(pairs):
        seen: set[str] = set()
        duplicate = next(key for key, _ in pairs if key in seen or seen.add(key))
        raise InvalidJSON(f"Duplicate key {duplicate!r} in an object.")
    return out


def strict_json_loads(data: str | bytes) -> Any:
    """json.loads that refuses what other parsers would read differently or we cannot store:
    invalid UTF-8, lone surrogates, NaN/Infinity, numbers out of range, duplicate keys, deep nesting."""
    decoded = isinstance(data, bytes)  # then valid UTF-8: no surrogate but from an escape
    if decoded:
        try:
            data = data.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise InvalidJSON(f"The body is not valid UTF-8 (byte {exc.start}).") from exc
    try:
        value = json.loads(
            data,
            parse_constant=_refuse_constant,
            parse_float=_finite_float,
            parse_int=_bounded_int,
            object_pairs_hook=_unique_keys,
        )
    except RecursionError as exc:
        raise InvalidJSON(f"The JSON is nested deeper than {MAX_JSON_DEPTH} levels.") from exc
    except InvalidJSON:
        raise
    except ValueError as exc:
        raise InvalidJSON(str(exc)) from exc
    _check_shape(value, strings=not decoded or _SURROGATE_ESCAPE.search(data) is not None)
    return value


#: Decoded UTF-8 holds no surrogates; json.loads makes them only from a \uD800-\uDFFF escape. A body
#: without one has no string to check (most bodies: checking each string was a third of the parse).
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")


def _check_shape(value: Any, strings: bool = True) -> None:
    """Depth and (when `strings`) lone surrogates, walked without recursion."""
    stack = [(value, 1)]
    while stack:
        node, depth = stack.pop()
        if isinstance(node, str):
            if _LONE_SURROGATE.search(node):
                raise InvalidJSON("A string contains an unpaired surrogate (not valid Unicode).")
            continue
        if not isinstance(node, (dict, list)):
            continue
        if depth > MAX_JSON_DEPTH:
            raise InvalidJSON(f"The JSON is nested deeper than {MAX_JSON_DEPTH} levels.")
        children = node.values() if isinstance(node, dict) else node
        if strings:
            if isinstance(node, dict):
                stack.extend((key, depth) for key in node)
            stack.extend((child, depth + 1) for child in children)
        else:
            stack.extend((child, depth + 1) for child in children if isinstance(child, (dict, list)))
