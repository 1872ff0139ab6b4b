"""CEL for x-kubernetes-validations: the Kubernetes libraries, oldSelf handling, error wording, cost guard."""

from __future__ import annotations

import datetime
from types import SimpleNamespace

import pytest

from pyk8s.api import cel


def node(type_: str = "", fmt: str = "", properties=None, additional=None, items=None, int_or_string=False,
         preserve_unknown=False, embedded=False) -> SimpleNamespace:
    return SimpleNamespace(type=type_, format=fmt, properties=properties, additional=additional, items=items,
                           int_or_string=int_or_string, preserve_unknown=preserve_unknown, embedded=embedded)


SPEC = node("object", properties={
    "n": node("integer"), "f": node("number"), "s": node("string"), "l": node("array", items=node("integer")),
    "when": node("string", "date-time"), "data": node("string", "byte"), "any": node(int_or_string=True),
    "opt": node("string"), "items": node("array", items=node("object", properties={"name": node("string")}))})


def evaluate(rule: str, value: dict, old: dict | None = None, **spec) -> cel.Outcome:
    compiled = cel.compile_rule(SPEC, {"rule": rule, **spec})
    assert not compiled.error, compiled.error
    activation = cel.Activation(cel.environment(SPEC), cel.to_cel(value, SPEC), cel.to_cel(old, SPEC),
                                old is not None)
    size = cel.largest_size(value, old, strings=compiled.string_sizes)
    return cel.run(compiled, activation, size, cel.RUNTIME_BUDGET)


TRUE_RULES = [
    "self.n == 3 && self.s.lowerAscii() == 'abc'",
    "self.?opt.orValue('x') == 'x' && !has(self.opt)",
    "self.l.isSorted() && self.l.sum() == 6 && self.l.min() == 1 && self.l.max() == 3",
    "[3, 1].isSorted() == false && ['a', 'b'].isSorted()",
    "'abc123def'.find('[0-9]+') == '123' && 'a1b2c3'.findAll('[0-9]') == ['1', '2', '3']",
    "'a1b2c3'.findAll('[0-9]', 2) == ['1', '2'] && 'abc'.find('x') == ''",
    "quantity('1Gi').isGreaterThan(quantity('1000Mi')) && quantity('1') == quantity('1000m')",
    "quantity('1.5').add(quantity('500m')).compareTo(quantity('2')) == 0 && quantity('2').sub(1) == quantity('1')",
    "quantity('100m').isInteger() == false && quantity('5').asInteger() == 5 && quantity('-1').sign() == -1",
    "isQuantity('1Gi') && !isQuantity('1Gb')",
    "url('https://user@example.com:8080/a%20b?x=1&x=2').getHostname() == 'example.com'",
    "url('https://example.com:8080/').getPort() == '8080' && url('https://example.com/p').getScheme() == 'https'",
    "url('https://[::1]:80/').getHostname() == '::1' && url('https://Example.COM/').getHostname() == 'Example.COM'",
    "url('https://example.com/?x=1&x=2').getQuery()['x'] == ['1', '2'] && isURL('/relative') && !isURL('x y')",
    "ip('10.0.0.1').family() == 4 && ip('::1').isLoopback() && ip('fe80::1').isLinkLocalUnicast()",
    "ip('8.8.8.8').isGlobalUnicast() && !ip('127.0.0.1').isGlobalUnicast() && isIP('1.2.3.4') && !isIP('1.2.3')",
    "ip.isCanonical('2001:db8::1') && !ip.isCanonical('2001:DB8::1') && ip('::1') == ip('0:0::1')",
    "cidr('10.0.0.0/8').containsIP('10.1.2.3') && cidr('10.0.0.0/8').containsIP(ip('10.0.0.1'))",
    "cidr('10.0.0.0/8').containsCIDR('10.1.0.0/16') && !cidr('10.0.0.0/16').containsCIDR(cidr('10.0.0.0/8'))",
    "cidr('192.168.1.5/24').masked() == cidr('192.168.1.0/24') && cidr('192.168.1.5/24').prefixLength() == 24",
    "cidr('192.168.1.5/24').ip() == ip('192.168.1.5') && isCIDR('10.0.0.0/8') && !isCIDR('10.0.0.0')",
    "sets.contains([1, 2, 3], [1, 2]) && sets.equivalent([1, 2], [2, 1]) && sets.intersects([1], [1, 5])",
    "timestamp(self.when) < timestamp('2030-01-01T00:00:00Z') && self.data == b'abc' && self.f == 2.0",
    "self.any == 'x' || self.any == 5",
    "cel.bind(x, self.n * 2, x == 6) && math.greatest(1, 5) == 5 && base64.encode(b'hi') == 'aGk='",
]


@pytest.mark.parametrize("rule", TRUE_RULES)
def test_library_functions(rule):
    value = {"n": 3, "f": 2, "s": "ABC", "l": [1, 2, 3], "when": "2024-05-06T07:08:09Z", "data": "YWJj", "any": 5}
    outcome = evaluate(rule, value)
    assert (outcome.passed, outcome.error) == (True, "")


ERROR_CASES = [
    ("self.n / 0 == 1", "division by zero evaluating rule: self.n / 0 == 1"),
    ("self.opt == 'a'", "no such key: opt evaluating rule: self.opt == 'a'"),
    ("[1, 2][5] == 1", "index out of bounds: 5 evaluating rule: [1, 2][5] == 1"),
    ("quantity('1Gb') == quantity('1')",
     "quantities must match the regular expression '^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$' evaluating "
     "rule: quantity('1Gb') == quantity('1')"),
    ("[].min() == 1", "min called on empty list evaluating rule: [].min() == 1"),
]


@pytest.mark.parametrize("rule,detail", ERROR_CASES)
def test_runtime_errors_use_upstream_words(rule, detail):
    outcome = evaluate(rule, {"n": 1, "l": []})
    assert (outcome.passed, outcome.error) == (False, detail)


def test_failure_messages():
    assert evaluate("self.n > 5", {"n": 1}).detail == "failed rule: self.n > 5"
    assert evaluate("self.n > 5", {"n": 1}, message=" too small ").detail == "too small"
    assert evaluate("self.n > 5", {"n": 1}, messageExpression="'n is ' + string(self.n)").detail == "n is 1"
    # a messageExpression that fails or gives nothing usable falls back to the message
    assert evaluate("self.n > 5", {"n": 1}, message="m", messageExpression="self.nope").detail == "m"
    assert evaluate("self.n > 5", {"n": 1}, messageExpression="' '").detail == "failed rule: self.n > 5"
    # a dyn rule that yields something other than true fails like a false one
    assert evaluate("self.any", {"any": 5}).detail == "failed rule: self.any"


def test_old_self():
    assert evaluate("self.n >= oldSelf.n", {"n": 1}, {"n": 2}).passed is False
    assert evaluate("self.n >= oldSelf.n", {"n": 3}, {"n": 2}).passed is True
    optional = {"optionalOldSelf": True}
    assert evaluate("!oldSelf.hasValue() || self.n >= oldSelf.value().n", {"n": 1}, None, **optional).passed
    assert not evaluate("!oldSelf.hasValue() || self.n >= oldSelf.value().n", {"n": 1}, {"n": 2}, **optional).passed


@pytest.mark.parametrize("source,uses", [
    ("oldSelf.x == self.x", True), ("self.oldSelf == 1", False), ("'oldSelf' == self.s", False),
    ("self.l.all(x, x != oldSelf)", True), ('"a \\" oldSelf" == self.s', False),
])
def test_old_self_detection(source, uses):
    assert cel.uses_old_self(source) is uses


def test_compile_errors():
    assert cel.compile_rule(SPEC, {"rule": "self.n +"}).error.startswith("compilation failed: ERROR: <input>:1:")
    assert cel.compile_rule(SPEC, {"rule": "self.n + 1"}).error == "cel expression must evaluate to a bool"
    compiled = cel.compile_rule(SPEC, {"rule": "true", "messageExpression": "1 + 2"})
    assert compiled.message_error == "messageExpression must evaluate to a string"


def test_a_date_time_self_is_a_timestamp():
    when = node("string", "date-time")
    compiled = cel.compile_rule(when, {"rule": "self < timestamp('2030-01-01T00:00:00Z')"})
    activation = cel.Activation(cel.environment(when), cel.to_cel("2024-01-01T00:00:00Z", when), None, False)
    assert cel.run(compiled, activation, 1, cel.RUNTIME_BUDGET).passed


@pytest.mark.parametrize("rule,column,name", [
    ("self.nope == 1", 5, "nope"),
    ("has(self.nope)", 4, "nope"),
    ("self.?nope.orValue(1) == 1", 5, "nope"),
    ("self.items.all(i, i.nmae == 'a')", 20, "nmae"),
    ("self.items[0].nmae == 'a'", 14, "nmae"),
])
def test_undefined_fields_fail_compilation(rule, column, name):
    error = cel.compile_rule(SPEC, {"rule": rule}).error
    assert error.startswith(f"compilation failed: ERROR: <input>:1:{column}: undefined field '{name}'"), error


def test_resource_roots_expose_type_and_name_only():
    assert not cel.compile_rule(SPEC, {"rule": "self.metadata.name == self.kind"}, resource=True).error
    error = cel.compile_rule(SPEC, {"rule": "has(self.metadata.labels)"}, resource=True).error
    assert "undefined field 'labels'" in error
    assert "undefined field 'metadata'" in cel.compile_rule(SPEC, {"rule": "has(self.metadata)"}).error


def test_maps_and_unknown_fields_allow_any_key():
    open_node = node("object", properties={"m": node("object", additional=node("string")),
                                           "x": node("object", preserve_unknown=True)})
    assert not cel.compile_rule(open_node, {"rule": "self.m.anything == 'a' && self.x.y.z == 1"}).error


@pytest.mark.parametrize("text,ok", [("1h30m", True), ("90m", True), ("5400s", True), ("1.5h", True), ("1x", False),
                                     ("0", False)])
def test_a_duration_self_is_a_duration(text, ok):
    timeout = node("string", "duration")
    compiled = cel.compile_rule(timeout, {"rule": "self == duration('1h30m') || self == duration('1s')"})
    activation = cel.Activation(cel.environment(timeout), cel.to_cel(text, timeout), None, False)
    outcome = cel.run(compiled, activation, 1, cel.RUNTIME_BUDGET)
    assert outcome.passed is ok
    assert cel.to_cel("0", timeout) == cel.to_cel("0s", timeout) == datetime.timedelta(0)


def test_declared_types_reject_mistyped_rules():
    assert cel.compile_rule(node("integer"), {"rule": "self.startsWith('a')"}).error.startswith("compilation failed")
    assert cel.compile_rule(node("array", items=node("string")), {"rule": "self.all(x, x > 1)"}).error


def test_cost_grows_with_nested_comprehensions():
    flat = cel.compile_rule(SPEC, {"rule": "self.l.all(x, x > 0)"})
    nested = cel.compile_rule(SPEC, {"rule": "self.l.all(x, self.l.all(y, x != y))"})
    assert len(flat.cost) == 2 and len(nested.cost) >= 3
    assert cel.bound(nested.cost, 1000) > cel.PER_CALL_LIMIT > cel.bound(flat.cost, 1000)


def test_rules_over_the_per_call_limit_do_not_run():
    outcome = evaluate("self.l.all(x, self.l.all(y, self.l.all(z, x + y + z > 0)))", {"l": list(range(200))})
    assert outcome.stop and "call cost exceeds limit" in outcome.error


def test_budget_exhaustion_stops_evaluation():
    compiled = cel.compile_rule(SPEC, {"rule": "self.n == 1"})
    activation = cel.Activation(cel.environment(SPEC), {"n": 1}, None, False)
    outcome = cel.run(compiled, activation, 1, budget=1)
    assert outcome.stop and outcome.error.startswith("validation failed due to running out of cost budget")


def test_largest_size_looks_through_nesting():
    value = {"a": [{"b": "x" * 40}], "c": list(range(7))}
    assert cel.largest_size(value) == 7
    assert cel.largest_size(value, strings=True) == 40
    assert cel.largest_size(None) == 1


def test_only_string_building_rules_are_bounded_by_string_length():
    assert not cel.compile_rule(SPEC, {"rule": "self.items.all(i, i.name.startsWith('a'))"}).string_sizes
    assert cel.compile_rule(SPEC, {"rule": "self.s.split(',').all(p, p != '')"}).string_sizes


def test_growing_intermediate_values_raise_the_bound():
    linear = cel.compile_rule(SPEC, {"rule": "self.s.replace('a', 'b').size() > 0"})
    growing = cel.compile_rule(SPEC, {"rule": "self.s.replace('', self.s).replace('', self.s).size() > 0"})
    nested_map = cel.compile_rule(SPEC, {"rule": "self.l.map(x, self.l).all(y, y.all(z, z > 0))"})
    assert len(linear.cost) == 2
    assert len(growing.cost) >= 4
    assert cel.bound(nested_map.cost, 1000) > cel.PER_CALL_LIMIT
