"""Resource quantities: exact values, the text upstream stores, and parse errors."""

from __future__ import annotations

from fractions import Fraction

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pyk8s.api.quantity import (
    BINARY_SI,
    DECIMAL_EXPONENT,
    DECIMAL_SI,
    FORMAT_ERROR,
    SUFFIX_ERROR,
    QuantityError,
    canonical,
    normalize,
    parse,
    round_up,
)


@pytest.mark.parametrize(("text", "value", "fmt"), [
    ("0", Fraction(0), DECIMAL_SI),
    ("1", Fraction(1), DECIMAL_SI),
    ("100m", Fraction(1, 10), DECIMAL_SI),
    ("1.5", Fraction(3, 2), DECIMAL_SI),
    ("1k", Fraction(1000), DECIMAL_SI),
    ("1n", Fraction(1, 10**9), DECIMAL_SI),
    ("5u", Fraction(5, 10**6), DECIMAL_SI),
    ("1Ki", Fraction(1024), BINARY_SI),
    ("1.5Gi", Fraction(3 * 2**29), BINARY_SI),
    ("2e3", Fraction(2000), DECIMAL_EXPONENT),
    ("1E-3", Fraction(1, 1000), DECIMAL_EXPONENT),
    ("-2Mi", Fraction(-2 * 2**20), BINARY_SI),
    ("+3", Fraction(3), DECIMAL_SI),
    (".5", Fraction(1, 2), DECIMAL_SI),
    (1, Fraction(1), DECIMAL_SI),
    (0.25, Fraction(1, 4), DECIMAL_SI),
    ("0.0000000001", Fraction(1, 10**9), DECIMAL_SI),  # below nano rounds up to 1n
    ("-0.0000000001", Fraction(-1, 10**9), DECIMAL_SI),  # away from zero
    ("10E", Fraction(2**63 - 1), DECIMAL_SI),  # capped at the int64 range
])
def test_parse_values(text, value, fmt):
    quantity = parse(text)
    assert (quantity.value, quantity.format) == (value, fmt)


@pytest.mark.parametrize(("text", "stored"), [
    ("100m", "100m"),
    ("1500m", "1500m"),
    ("2000m", "2"),
    ("1000m", "1"),
    ("0.5", "500m"),
    ("1.5", "1500m"),
    ("2000", "2k"),
    ("1500", "1500"),
    ("1000k", "1M"),
    ("2e3", "2e3"),
    ("1E3", "1E3"),  # kept verbatim by upstream's fast path
    ("1e-4", "100e-6"),
    ("1Gi", "1Gi"),
    ("3Gi", "3Gi"),
    ("1024Mi", "1Gi"),
    ("1.5Gi", "1536Mi"),
    ("0.5Ki", "512"),  # binary values below 1Ki are written in decimal
    ("1.5Ki", "1536"),
    ("0.3Ki", "307200m"),
    ("-1Gi", "-1Gi"),
    ("0.0", "0"),
    ("+1", "+1"),
    (1, "1"),
    (0.5, "500m"),
    ("1000001", "1000001"),
])
def test_normalize(text, stored):
    assert normalize(text) == stored


@pytest.mark.parametrize(("text", "stored"), [
    ("1n", "1m"),
    ("1500u", "2m"),
    ("0.0001", "1m"),
    ("1e-4", "1e-3"),
    ("100m", "100m"),
    ("-1500u", "-2m"),
    ("1.0001Ki", "1024103m"),
])
def test_normalize_rounds_resource_lists_to_milli(text, stored):
    assert normalize(text, milli=True) == stored


@pytest.mark.parametrize(("text", "message"), [
    ("", FORMAT_ERROR),
    ("abc", FORMAT_ERROR),
    ("1.5.5", FORMAT_ERROR),
    ("1Gb", FORMAT_ERROR),
    ("1Zi", FORMAT_ERROR),
    ("1 Gi", FORMAT_ERROR),
    ("5e", SUFFIX_ERROR),
    ("5Mii", SUFFIX_ERROR),
    (None, FORMAT_ERROR),
    (True, FORMAT_ERROR),
    ([1], FORMAT_ERROR),
])
def test_parse_errors(text, message):
    with pytest.raises(QuantityError) as info:
        parse(text)
    assert str(info.value) == message


def test_format_error_is_upstreams_wording():
    assert FORMAT_ERROR == ("quantities must match the regular expression "
                            "'^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'")


@pytest.mark.parametrize(("value", "fmt", "text"), [
    (Fraction(0), BINARY_SI, "0"),
    (Fraction(1, 10), DECIMAL_SI, "100m"),
    (Fraction(1, 3), DECIMAL_SI, "333333334n"),  # finer than nano rounds up
    (Fraction(10**21), DECIMAL_SI, "1000000000000000000000"),  # no SI suffix beyond exa
    (Fraction(2**60), BINARY_SI, "1Ei"),
    (Fraction(1500), DECIMAL_EXPONENT, "1500"),
    (Fraction(2000), DECIMAL_EXPONENT, "2e3"),
    (Fraction(-1, 1000), DECIMAL_SI, "-1m"),
])
def test_canonical(value, fmt, text):
    assert canonical(value, fmt) == text


def test_round_up_keeps_exact_quantities():
    quantity = parse("100m")
    assert round_up(quantity, -3) is quantity


_SUFFIXES = st.sampled_from(["", "m", "k", "M", "G", "n", "u", "Ki", "Mi", "Gi", "e3", "e-2", "E6"])
_QUANTITIES = st.builds(lambda sign, whole, frac, suffix: f"{sign}{whole}{frac}{suffix}",
                        st.sampled_from(["", "-", "+"]), st.integers(0, 10**12).map(str),
                        st.sampled_from(["", ".5", ".25", ".001", ".0"]), _SUFFIXES)


def test_binary_values_without_a_binary_form_read_back_as_decimal():
    # Upstream writes 62.5Ki as "64000", which parses back as decimal SI: the next write says "64k".
    assert normalize("62.5Ki") == "64000"
    assert normalize("64000") == "64k"


@settings(deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_QUANTITIES)
def test_normalize_preserves_value_and_settles(text):
    stored = normalize(normalize(text))
    assert normalize(stored) == stored
    assert parse(stored).value == parse(text).value


@settings(deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_QUANTITIES)
def test_milli_normalization_settles_on_milli_values(text):
    stored = normalize(normalize(text, milli=True), milli=True)
    assert normalize(stored, milli=True) == stored
    assert (parse(stored).value * 1000).denominator == 1
