"""Go duration strings ("30s", "1m", "1h30m", "1.5h", "300ms"), the format the SDK's
ansible-operator hands to time.ParseDuration, parsed the same way."""

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
_TERM = re.compile(r"([0-9]*(?:\.[0-9]*)?)([^0-9.]*)")


class DurationError(ValueError):
    pass


def parse_duration(text: str) -> float:
    """Seconds in a Go duration string. Negative durations are refused: a requeue delay
    cannot be in the past."""
    if not isinstance(text, str):
        raise DurationError("a duration must be a string such as '30s', '1m' or '1h30m'")
    value = text.strip()
    if value.startswith("-"):
        raise DurationError(f"invalid duration {text!r}: a requeue delay cannot be negative")
    value = value[1:] if value.startswith("+") else value
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
    if nanoseconds > _MAX_NS:
        raise DurationError(f"invalid duration {text!r}: longer than Go's maximum (about 292 years)")
    return nanoseconds / 1_000_000_000
