"""Go durations ("30s", "1m30s", "1.5h", "300ms", "-1s"), read as Go's ``time.ParseDuration``
reads them: an optional sign, then ``0`` or one or more decimal numbers each followed by a unit
(ns, us, µs, μs, ms, s, m, h), nothing else (no spaces), at most what an int64 of nanoseconds
holds. Fractions below a nanosecond are dropped, as Go drops them.

Negative durations are parsed; whether one makes sense is the caller's to say."""

from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation

# Nanoseconds per unit, as in Go's time package (both micro signs included).
_UNITS = {
    "ns": 1,
    "us": 1_000,
    "\u00b5s": 1_000,
    "\u03bcs": 1_000,
    "ms": 1_000_000,
    "s": 1_000_000_000,
    "m": 60_000_000_000,
    "h": 3_600_000_000_000,
}
_NAMES = "units are ns, us, ms, s, m and h"
# Go's time.Duration is an int64 of nanoseconds.
_MAX_NS = 2**63 - 1
# One term: a number, then everything up to the next digit or dot is its unit (as Go scans it).
_TERM = re.compile(r"([0-9]*(?:\.[0-9]*)?)([^0-9.]*)")


class DurationError(ValueError):
    """Not a Go duration; the message says why, starting with ``invalid duration '<text>'``."""


def parse_duration(text: str) -> float:
    """Seconds in a Go duration string. Raises DurationError."""
    if not isinstance(text, str):
        raise DurationError(f"invalid duration {text!r}: a duration must be a string such as '30s', '1m' or '1h30m'")
    value = text
    negative = value.startswith("-")
    if value[:1] in ("+", "-"):
        value = value[1:]
    if value == "0":
        return 0.0
    if not value:
        raise DurationError(f"invalid duration {text!r}: expected a number and a unit, such as '30s'")

    total = Decimal(0)
    position = 0
    while position < len(value):
        match = _TERM.match(value, position)
        if match is None:  # the pattern matches the empty string; kept for type checkers
            break
        number, unit = match.groups()
        if number in ("", "."):
            raise DurationError(f"invalid duration {text!r}: expected a number at {value[position:]!r}")
        if not unit:
            raise DurationError(f"invalid duration {text!r}: missing unit after {number!r} ({_NAMES})")
        if unit not in _UNITS:
            raise DurationError(f"invalid duration {text!r}: unknown unit {unit!r} ({_NAMES})")
        try:
            total += Decimal(number) * _UNITS[unit]
        except InvalidOperation as exc:
            raise DurationError(f"invalid duration {text!r}") from exc
        position = match.end()

    nanoseconds = int(total)  # Go truncates below a nanosecond
    if nanoseconds > _MAX_NS + (1 if negative else 0):
        raise DurationError(f"invalid duration {text!r}: longer than Go's maximum (about 292 years)")
    seconds = nanoseconds / 1_000_000_000
    return -seconds if negative else seconds
