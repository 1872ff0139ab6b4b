"""Kubernetes resource quantities ("100m", "1.5Gi", "2e3"): exact parsing and canonical text.

Values are exact `Fraction`s. The text a quantity serialises to follows upstream's
resource.Quantity: the input text is kept when it is already in canonical form, otherwise
the canonical form of the value in the input's format (decimal SI, binary SI or decimal
exponent) is written.
"""

from __future__ import annotations

import functools
import math
import re
from dataclasses import dataclass
from fractions import Fraction

DECIMAL_SI = "DecimalSI"
BINARY_SI = "BinarySI"
DECIMAL_EXPONENT = "DecimalExponent"

FORMAT_ERROR = "quantities must match the regular expression '^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'"
SUFFIX_ERROR = "unable to parse quantity's suffix"

_SYNTAX = re.compile(r"([+-]?)([0-9]*)(?:\.([0-9]*))?([eEinumkKMGTP]*[-+]?[0-9]*)")
_DECIMAL_SUFFIXES = {"n": -9, "u": -6, "m": -3, "": 0, "k": 3, "M": 6, "G": 9, "T": 12, "P": 15, "E": 18}
_DECIMAL_SUFFIX_OF = {exp: suffix for suffix, exp in _DECIMAL_SUFFIXES.items()}
_BINARY_SUFFIXES = {"Ki": 10, "Mi": 20, "Gi": 30, "Ti": 40, "Pi": 50, "Ei": 60}
_BINARY_SUFFIX_OF = {exp // 10: suffix for suffix, exp in _BINARY_SUFFIXES.items()} | {0: ""}
_EXPONENT_SUFFIX = re.compile(r"[eE]([-+]?[0-9]+)")
_NANO = Fraction(1, 10**9)
_MAX = Fraction(2**63 - 1)  # upstream caps quantities at the int64 range
_MAX_INT64_DIGITS = 18  # digits an int64 always holds (upstream's maxInt64Factors)


class QuantityError(ValueError):
    """Text that is not a quantity; the message is upstream's."""


@dataclass(frozen=True)
class Quantity:
    value: Fraction
    format: str
    text: str | None = None  # the input text, kept only when upstream would keep it

    def __str__(self) -> str:
        return self.text if self.text is not None else canonical(self.value, self.format)


@dataclass(frozen=True)
class _Parts:
    negative: bool
    whole: str  # integer digits without leading zeros ("0" when none)
    fraction: str  # digits after the decimal point
    suffix: str


def _split(text: str) -> _Parts:
    match = _SYNTAX.fullmatch(text)
    if not text or match is None:
        raise QuantityError(FORMAT_ERROR)
    sign, whole, fraction, suffix = match.groups()
    return _Parts(sign == "-", whole.lstrip("0") or "0", fraction or "", suffix)


def _interpret_suffix(suffix: str) -> tuple[int, int, str]:
    """(base, exponent, format) for a suffix."""
    if suffix in _DECIMAL_SUFFIXES:
        return 10, _DECIMAL_SUFFIXES[suffix], DECIMAL_SI
    if suffix in _BINARY_SUFFIXES:
        return 2, _BINARY_SUFFIXES[suffix], BINARY_SI
    exponent = _EXPONENT_SUFFIX.fullmatch(suffix)
    if exponent is None:
        raise QuantityError(SUFFIX_ERROR)
    return 10, int(exponent.group(1)), DECIMAL_EXPONENT


def _round_away_from_zero(value: Fraction, step: Fraction) -> Fraction:
    units = value / step
    rounded = math.ceil(units) if units > 0 else math.floor(units)
    return rounded * step


def _keeps_text(parts: _Parts, base: int, exponent: int) -> bool:
    """Whether upstream's fast parse path keeps the input text as the serialised form."""
    digits = parts.whole + parts.fraction
    if base == 2:
        precision = 15 - len(parts.whole) - int(exponent * 3 / 10) - 1
        return not parts.fraction and precision >= 0 and int(parts.whole) & 0x07 != 0
    scale = exponent - len(parts.fraction)
    precision = _MAX_INT64_DIGITS - len(digits)
    return (precision >= 0 and scale >= -9 and scale % 3 == 0
            and not digits.endswith("000") and not digits.startswith("0"))


def parse(text: object) -> Quantity:
    """Parse a quantity from its JSON form (a string, or a number written unquoted)."""
    if isinstance(text, bool) or not isinstance(text, (str, int, float)):
        raise QuantityError(FORMAT_ERROR)
    text = text.strip() if isinstance(text, str) else repr(text)
    if text == "0":
        return Quantity(Fraction(0), DECIMAL_SI, "0")
    parts = _split(text)
    base, exponent, fmt = _interpret_suffix(parts.suffix)
    magnitude = Fraction(int(parts.whole + parts.fraction), 10 ** len(parts.fraction)) * Fraction(base) ** exponent
    value = -magnitude if parts.negative else magnitude
    if value and value % _NANO:
        # Upstream rounds up so that asking for a tiny amount never yields nothing.
        value = _round_away_from_zero(value, _NANO)
    if abs(value) > _MAX:
        value = _MAX if value > 0 else -_MAX
        return Quantity(value, fmt)
    return Quantity(value, fmt, text if _keeps_text(parts, base, exponent) else None)


def round_up(quantity: Quantity, scale: int) -> Quantity:
    """Round away from zero to a multiple of 10**scale (upstream Quantity.RoundUp)."""
    step = Fraction(10) ** scale
    rounded = _round_away_from_zero(quantity.value, step)
    if rounded == quantity.value:
        return quantity
    return Quantity(rounded, quantity.format)


def _decimal_mantissa(value: Fraction) -> tuple[int, int]:
    """(mantissa, exponent) with value == mantissa * 10**exponent and exponent a multiple of 3."""
    exponent = 0
    mantissa = value
    while mantissa.denominator != 1:
        mantissa *= 10
        exponent -= 1
    whole = int(mantissa)
    while whole % 10 == 0:
        whole //= 10
        exponent += 1
    shift = exponent - 3 * (exponent // 3)
    return whole * 10**shift, exponent - shift


def _binary_mantissa(value: int) -> tuple[int, int]:
    exponent = 0
    while value % 1024 == 0 and exponent < max(_BINARY_SUFFIX_OF):
        value //= 1024
        exponent += 1
    return value, exponent


def canonical(value: Fraction, fmt: str) -> str:
    """Upstream's canonical text for a value in a format."""
    if value == 0:
        return "0"
    sign = "-" if value < 0 else ""
    # Quantities carry at most nano precision; rounding also bounds the mantissa search.
    magnitude = _round_away_from_zero(abs(value), _NANO)
    if fmt == BINARY_SI and magnitude >= 1024 and magnitude.denominator == 1:
        mantissa, exponent = _binary_mantissa(int(magnitude))
        return f"{sign}{mantissa}{_BINARY_SUFFIX_OF[exponent]}"
    mantissa, exponent = _decimal_mantissa(magnitude)
    if fmt == DECIMAL_EXPONENT:
        return f"{sign}{mantissa}" + (f"e{exponent}" if exponent else "")
    if exponent not in _DECIMAL_SUFFIX_OF:
        # Beyond exa there is no SI suffix; write the digits out.
        return f"{sign}{mantissa * 10**exponent}"
    return f"{sign}{mantissa}{_DECIMAL_SUFFIX_OF[exponent]}"


def normalize(text: object, milli: bool = False) -> str:
    """The text upstream stores for a quantity; `milli` rounds up to 1m first (resource lists)."""
    if isinstance(text, str):
        return _normalized_text(text, milli)
    return _normalize(text, milli)


def _normalize(text: object, milli: bool) -> str:
    quantity = parse(text)
    if milli:
        quantity = round_up(quantity, -3)
    return str(quantity)


# Every pod's requests and limits are normalized at least twice per write (defaulting runs again after
# admission), and clusters use few distinct quantities: remember the answers (errors are not cached).
_normalized_text = functools.lru_cache(maxsize=4096)(_normalize)
