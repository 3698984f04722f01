"""A spreadsheet cell as the text the spreadsheet shows: its value formatted by its number format.

openpyxl gives the stored value (0.5, True, a datetime); a person sees "50%", "TRUE",
"29/11/2026" or "1,234.50", and that is what they mean the model to learn. This covers
Excel's common number formats: General, fixed decimals, thousands separators, percent,
scientific, currency and other literal text, dates and times. Anything else falls back to
the General rendering.
"""

from __future__ import annotations

import datetime as dt
import re
from decimal import ROUND_HALF_UP, Decimal

# Excel's built-in format 14 is the system's short date; openpyxl names it "mm-dd-yy".
LOCALE_DATE = {"mm-dd-yy": "m/d/yyyy"}
_DATE_TOKENS = re.compile(r'"[^"]*"|\\.|\[[^\]]*\]|am/pm|a/p|yyyy|yy|m{1,5}|d{1,4}|h{1,2}|s{1,2}|\.0+|.', re.I)
_NUMBER = re.compile(r"[0#?][0#?,]*(?:\.[0#?]*)?(?:[eE][+-][0#]+)?|\.[0#?]+")
MONTHS = ("January", "February", "March", "April", "May", "June", "July", "August", "September", "October",
          "November", "December")
DAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")


def cell_text(value, number_format: str | None = "General") -> str:
    """The text a spreadsheet shows for a cell holding `value` with `number_format`."""
    if value is None:
        return ""
    fmt = number_format or "General"
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, dt.timedelta):
        return _duration(value, fmt)
    if isinstance(value, (dt.datetime, dt.date, dt.time)):
        return _date(value, fmt)
    if isinstance(value, (int, float)):
        return _number(value, fmt)
    return str(value)


def general(value: float) -> str:
    """Excel's General format: integers without ".0", up to 15 significant digits."""
    if float(value).is_integer() and abs(value) < 1e15:
        return str(int(value))
    return f"{value:.15g}".replace("e+", "E+").replace("e-", "E-")


def _sections(fmt: str) -> list[str]:
    return re.split(r';(?=(?:[^"]*"[^"]*")*[^"]*$)', fmt)


def _literal(part: str) -> str:
    """The literal text of a format piece: quoted text, escaped characters, currency symbols."""
    out = []
    for token in re.findall(r'"[^"]*"|\\.|\[\$[^\]-]*(?:-[^\]]*)?\]|\[[^\]]*\]|_.|\*.|.', part):
        if token.startswith('"'):
            out.append(token[1:-1])
        elif token.startswith("\\"):
            out.append(token[1])
        elif token.startswith("[$"):
            out.append(token[2:-1].split("-")[0])
        elif token.startswith("_"):
            out.append(" ")
        elif not token.startswith(("[", "*")):
            out.append(token)
    return "".join(out)


def _number(value: float, fmt: str) -> str:
    sections = _sections(fmt)
    section = sections[0]
    if value < 0 and len(sections) > 1:
        section, value = sections[1], -value  # the negative section writes its own sign or brackets
    elif value == 0 and len(sections) > 2:
        section = sections[2]
    bare = _literal(section).strip().lower()
    if bare in ("general", "") or "@" in section:
        return general(value) if bare in ("general", "", "@") else _literal(section).replace("@", general(value))
    masked = re.sub(r'"[^"]*"|\\.|\[[^\]]*\]', lambda m: "\0" * len(m.group()), section)
    found = _NUMBER.search(masked)
    if not found or "/" in masked:  # fractions and other rare formats
        return general(value)
    pattern = found.group()
    value *= 100 ** masked.count("%")
    digits = pattern.split(".")[1] if "." in pattern else ""
    exponent = re.search(r"[eE][+-]", digits)
    decimals = len(re.sub(r"[eE].*", "", digits))
    if exponent:
        text = f"{value:.{decimals}E}"
        mantissa, power = text.split("E")
        text = f"{mantissa}E{power[0]}{int(power[1:]):02d}"
    else:
        rounded = Decimal(repr(float(value))).quantize(Decimal(1).scaleb(-decimals), ROUND_HALF_UP)
        text = f"{rounded:,}" if "," in pattern.split(".")[0] else str(rounded)
        optional = digits.count("#") + digits.count("?")
        if optional and "." in text:  # '#' decimals show only when not zero
            keep = len(text) - optional
            text = text[:keep] + text[keep:].rstrip("0")
            text = text.rstrip(".") if not digits.startswith("0") or text.endswith(".") else text
    return _literal(section[:found.start()]) + text + _literal(section[found.end():])


def _date(value, fmt: str) -> str:
    fmt = LOCALE_DATE.get(fmt.lower(), fmt)
    if _literal(fmt).strip().lower() in ("general", ""):
        if isinstance(value, dt.datetime) and value.time() == dt.time():
            value = value.date()
        return value.isoformat(sep=" ") if isinstance(value, dt.datetime) else value.isoformat()
    if isinstance(value, dt.date) and not isinstance(value, dt.datetime):
        value = dt.datetime.combine(value, dt.time())
    elif isinstance(value, dt.time):
        value = dt.datetime.combine(dt.date(1899, 12, 31), value)
    tokens = _DATE_TOKENS.findall(_sections(fmt)[0])
    twelve = any(t.lower() in ("am/pm", "a/p") for t in tokens)
    out = []
    for i, token in enumerate(tokens):
        low = token.lower()
        if low.startswith("m") and len(low) <= 2 and _is_minute(tokens, i):
            out.append(f"{value.minute:0{len(low)}d}")
        else:
            out.append(_date_part(value, token, low, twelve))
    return "".join(out)


def _is_minute(tokens: list[str], i: int) -> bool:
    """'m' after an hour or before seconds is minutes, else months (Excel's rule)."""
    before = [t.lower() for t in tokens[:i] if t.strip() and t not in ":"]
    after = [t.lower() for t in tokens[i + 1:] if t.strip() and t not in ":"]
    return bool(before and before[-1][0] in "h[") or bool(after and after[0][0] == "s")


def _date_part(value: dt.datetime, token: str, low: str, twelve: bool) -> str:
    parts = {"yyyy": f"{value.year:04d}", "yy": f"{value.year % 100:02d}", "m": str(value.month),
             "mm": f"{value.month:02d}", "mmm": MONTHS[value.month - 1][:3], "mmmm": MONTHS[value.month - 1],
             "mmmmm": MONTHS[value.month - 1][0], "d": str(value.day), "dd": f"{value.day:02d}",
             "ddd": DAYS[value.weekday()][:3], "dddd": DAYS[value.weekday()], "s": str(value.second),
             "ss": f"{value.second:02d}"}
    hour = (value.hour % 12 or 12) if twelve else value.hour
    parts.update({"h": str(hour), "hh": f"{hour:02d}"})
    if low in parts:
        return parts[low]
    if low == "am/pm":
        return "AM" if value.hour < 12 else "PM"
    if low == "a/p":
        return "A" if value.hour < 12 else "P"
    if low.startswith(".0"):
        return "." + f"{value.microsecond:06d}"[:len(low) - 1]
    return _literal(token)


def _duration(value: dt.timedelta, fmt: str) -> str:
    seconds = int(value.total_seconds())
    if "[h" in fmt.lower():
        return f"{seconds // 3600}:{seconds % 3600 // 60:02d}" + (f":{seconds % 60:02d}" if "s" in fmt.lower() else "")
    return str(value)
