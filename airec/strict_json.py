"""Strict JSON parsing: refuse what other parsers would read differently or we cannot store."""

from __future__ import annotations

import json
import math
import re
from typing import Any

import orjson

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


def strict_json_loads_bytes(data: bytes) -> Any:
    """strict_json_loads(data), through orjson (a tenth of the cost) whenever orjson's reading is
    provably the same: orjson refuses invalid UTF-8, lone surrogates, NaN/Infinity and infinite numbers
    itself; what it reads differently (a duplicate key keeps the last value, an integer over 64 bits
    becomes a float, deep nesting) is found by `_read_alike`, and such a body, like any body orjson
    refuses, is parsed by the standard library's strict path, which words the refusal."""
    try:
        value = orjson.loads(data)
    except orjson.JSONDecodeError:
        return strict_json_loads(data)
    return value if _read_alike(value, data) else strict_json_loads(data)


#: Every JSON string of a valid document, in order; group 1 is set when it is an object's key.
_STRING_TOKEN = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"(\s*:)?')
#: orjson turns integers beyond 64 bits into floats: a float this large may have been one.
_INT_AS_FLOAT = float(2**63)
_MAX_INT = 10**MAX_INT_DIGITS


def _read_alike(value: Any, data: bytes) -> bool:
    """Whether orjson's `value` of the valid document `data` is what the strict path reads: no
    duplicate key (its objects hold as many keys as the text names), no integer of more than
    MAX_INT_DIGITS digits or float orjson may have made of one, no nesting beyond MAX_JSON_DEPTH."""
    keys = 0
    stack = [(value, 0)]
    while stack:
        node, depth = stack.pop()
        kind = type(node)
        if kind is dict:
            keys += len(node)
            node = node.values()
        elif kind is not list:
            if not _plain_scalar(node):
                return False
            continue
        if depth >= MAX_JSON_DEPTH:
            return False
        for child in node:
            kind = type(child)
            if kind is dict or kind is list:
                stack.append((child, depth + 1))
            elif kind is not str and not _plain_scalar(child):
                return False
    # Every key is followed by a colon; with no more colons than keys read, no key was read twice.
    return data.count(b":") == keys or keys == _key_tokens(data)


def _plain_scalar(value: Any) -> bool:
    if type(value) is float:
        return -_INT_AS_FLOAT < value < _INT_AS_FLOAT
    if type(value) is int:
        return -_MAX_INT < value < _MAX_INT
    return True


def _key_tokens(data: bytes) -> int:
    return sum(1 for token in _STRING_TOKEN.finditer(data) if token.group(1))


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
