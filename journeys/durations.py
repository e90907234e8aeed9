"""ISO 8601 durations (``PT1H``, ``P3D``, ``P2W``, ``-P1D``) as used in journey specs."""

from __future__ import annotations

import re
from datetime import timedelta

_PATTERN = re.compile(
    r"^(?P<sign>-)?P(?:(?P<weeks>\d+)W)?(?:(?P<days>\d+)D)?"
    r"(?:T(?:(?P<hours>\d+)H)?(?:(?P<minutes>\d+)M)?(?:(?P<seconds>\d+(?:\.\d+)?)S)?)?$"
)

# The same language for JSON Schema (ECMA-262, no named groups), without the optional sign:
# prefix "^-?" or "^". The lookaheads refuse the bare "P", "PT" and "P1DT" that the parser refuses.
JSON_SCHEMA_PATTERN = r"P(?!$)(?:\d+W)?(?:\d+D)?(?:T(?=\d)(?:\d+H)?(?:\d+M)?(?:\d+(?:\.\d+)?S)?)?$"


def parse_duration(text: str) -> timedelta:
    """Parse an ISO 8601 duration without years or months (their length is not fixed)."""
    match = _PATTERN.match(text.strip()) if isinstance(text, str) else None
    if not match or text.strip() in ("P", "PT", "-P", "-PT") or text.strip().endswith("T"):
        raise ValueError(
            f"{text!r} is not an ISO 8601 duration such as PT30M, PT1H, P3D or P2W "
            "(years and months are not allowed: their length varies)"
        )
    parts = {k: float(v) for k, v in match.groupdict().items() if v and k != "sign"}
    value = timedelta(
        weeks=parts.get("weeks", 0),
        days=parts.get("days", 0),
        hours=parts.get("hours", 0),
        minutes=parts.get("minutes", 0),
        seconds=parts.get("seconds", 0),
    )
    return -value if match.group("sign") else value


def format_duration(value: timedelta) -> str:
    """The shortest ISO 8601 form of a duration, e.g. ``P1DT2H``."""
    sign = "-" if value < timedelta(0) else ""
    # Exact integer arithmetic: fractions of a second (PT1.5S) must survive the round trip.
    total, micro = divmod(abs(value) // timedelta(microseconds=1), 1_000_000)
    days, rest = divmod(total, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, seconds = divmod(rest, 60)
    second_text = f"{seconds}.{micro:06d}".rstrip("0") if micro else str(seconds)
    date_part = f"{days}D" if days else ""
    time_part = "".join(f"{n}{unit}" for n, unit in ((hours, "H"), (minutes, "M")) if n) + (
        f"{second_text}S" if seconds or micro else ""
    )
    if not date_part and not time_part:
        return "PT0S"
    return f"{sign}P{date_part}" + (f"T{time_part}" if time_part else "")
