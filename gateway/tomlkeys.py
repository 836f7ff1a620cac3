"""Which line of a TOML file set a key, and which key a msgspec error is about.

One helper for every file the gateway reads (its config, the device registry, the limits
file), so that each error reads ``file:line: key: problem``. Pure: text and errors in,
numbers and strings out; the callers read the files.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

import msgspec

_HEADER = re.compile(r"^\[\s*([^\[\]]+?)\s*\]\s*(#.*)?$")
_KEY = re.compile(r"^([A-Za-z0-9_\-.\"' ]+?)\s*=")


def _split_key(key: str) -> tuple[str, ...]:
    return tuple(part.strip().strip("\"'") for part in key.split("."))


def line_of(text: str, key: str | Sequence[str]) -> int | None:
    """1-based line in TOML ``text`` that sets ``key`` (dotted, or its parts), else the line
    of the nearest enclosing table, else None."""
    target = _split_key(key) if isinstance(key, str) else tuple(key)
    best, best_len = None, 0
    current: tuple[str, ...] = ()
    for number, line in enumerate(text.splitlines(), 1):
        stripped = line.strip()
        m = _HEADER.match(stripped)
        if m:
            current = _split_key(m.group(1))
            full = current
        else:
            m = _KEY.match(stripped)
            if not m:
                continue
            full = current + _split_key(m.group(1))
        common = 0
        for a, b in zip(full, target):
            if a != b:
                break
            common += 1
        if common == len(target):
            return number
        if common == len(full) and common > best_len:
            best, best_len = number, common
    return best


def error_key(err: msgspec.ValidationError, base: str = "") -> str:
    """The dotted key a msgspec validation error is about (list indices dropped), under ``base``.

    ``Expected `int`, got `str` - at `$.mqtt.port``` -> ``mqtt.port``; an unknown or missing
    field is named too: ``Object contains unknown field `prot` - at `$.mqtt``` -> ``mqtt.prot``.
    """
    text = str(err)
    m = re.search(r" - at `\$\.?([^`]*)`", text)
    path = re.sub(r"\[[^\]]*\]", "", m.group(1) if m else "")
    m = re.search(r"(?:unknown|missing required) field `([^`]+)`", text)
    if m:
        path = f"{path}.{m.group(1)}" if path else m.group(1)
    return ".".join(p for p in (base, path) if p)


def error_message(err: msgspec.ValidationError) -> str:
    """The problem alone, without msgspec's `` - at `$...``` suffix (the key says where)."""
    return str(err).split(" - at ")[0]


def located(source: str, text: str, key: str, problem: str) -> str:
    """``source:line: key: problem``, or ``source: key: problem`` when no line sets the key."""
    line = line_of(text, key) if key else None
    where = f"{source}:{line}" if line else source
    return f"{where}: {key or '(top level)'}: {problem}"
