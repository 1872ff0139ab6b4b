"""Label and field selectors: apimachinery's grammar, canonical strings, matching and messages."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pyk8s.api.kinds import REGISTRY
from pyk8s.api.selectors import (
    FieldSelector,
    SelectorError,
    check_field_selector,
    convert_field_selector,
    format_label_selector,
    label_selector_from_object,
    label_selector_from_set,
    label_selector_to_string,
    parse_field_selector,
    parse_label_selector,
    selectable_fields,
)

QNAME_REGEX = "'([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]'"
NAME_PART_ERROR = ("name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end "
                   "with an alphanumeric character (e.g. 'MyName', or 'my.name', or '123-abc', regex used for "
                   f"validation is {QNAME_REGEX})")
LABEL_VALUE_ERROR = ("a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', "
                     "and must start and end with an alphanumeric character (e.g. 'MyValue', or 'my_value', or "
                     "'12345', regex used for validation is '(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')")


def kind(group: str, version: str, plural: str):
    found = REGISTRY.lookup(group, version, plural)
    assert found is not None
    return found


# --- label selector grammar ---------------------------------------------------------------------

@pytest.mark.parametrize("text, canonical", [
    ("", ""),
    ("   ", ""),
    ("a=b", "a=b"),
    ("a==b", "a==b"),
    ("a!=b", "a!=b"),
    ("a", "a"),
    ("!a", "!a"),
    ("a>1", "a>1"),
    ("a<-1", None),  # "-1" is an integer but not a valid label value
    ("a in (b,c)", "a in (b,c)"),
    ("a notin (c,b)", "a notin (b,c)"),
    ("  a  in  ( b , c ) ,  d  ", "a in (b,c),d"),
    ("z=1,a=2,m", "a=2,m,z=1"),
    ("x in (foo,,baz),y,z notin ()", "x in (,baz,foo),y,z notin ()"),
    ("a in ()", "a in ()"),
    ("a in (,)", "a in ()"),
    ("a in (b,)", "a in (,b)"),
    ("a=", "a="),
    ("a!=,b", "a!=,b"),
    ("in in (in)", "in in (in)"),
    ("notin=notin", "notin=notin"),
    ("a=in", "a=in"),
    ("example.com/app=web", "example.com/app=web"),
    ("a\tin\n(b)", "a in (b)"),
    ("a in (b,b,a)", "a in (a,b)"),
])
def test_label_selector_grammar(text, canonical):
    if canonical is None:
        with pytest.raises(SelectorError):
            parse_label_selector(text)
        return
    assert str(parse_label_selector(text)) == canonical


@pytest.mark.parametrize("text, message", [
    ("a b", "unable to parse requirement: found 'b', expected: in, notin, =, ==, !=, gt, lt"),
    ("!a=b", "found '=', expected: ',' or 'end of string'"),
    ("a=b c", "found 'c', expected: ',' or 'end of string'"),
    ("a=b=c", "found '=', expected: ',' or 'end of string'"),
    ("a,", "found '', expected: identifier after ','"),
    ("a,,b", "found ',', expected: identifier after ','"),
    ("=", "found '=', expected: !, identifier, or 'end of string'"),
    ("(a)", "found '(', expected: !, identifier, or 'end of string'"),
    ("!", "unable to parse requirement: found '', expected: identifier"),
    ("!!a", "unable to parse requirement: found '!', expected: identifier"),
    ("a=(b)", "unable to parse requirement: found '(', expected: identifier"),
    ("a!==b", "unable to parse requirement: found '=', expected: identifier"),
    ("a=>1", "unable to parse requirement: found '>', expected: identifier"),
    ("a in b", "unable to parse requirement: found 'b' expected: '('"),
    ("a in (b c)", "unable to parse requirement: found 'c', expected: ',' or ')'"),
    ("a in (b", "unable to parse requirement: found '', expected: ',' or ')'"),
    ("a in (b,", "unable to parse requirement: found '', expected: ',', or identifier"),
    ("a in (=)", "unable to parse requirement: found '=', expected: ',', ')' or identifier"),
    ("a>b", ("unable to parse requirement: values[0]: Invalid value: \"b\": "
            "for 'Gt', 'Lt' operators, the value must be an integer")),
    ("a>", ("unable to parse requirement: values[0]: Invalid value: \"\": "
           "for 'Gt', 'Lt' operators, the value must be an integer")),
    ("a<-1", f'unable to parse requirement: values[0][a]: Invalid value: "-1": {LABEL_VALUE_ERROR}'),
    ("a>x_", ("unable to parse requirement: [values[0]: Invalid value: \"x_\": for 'Gt', 'Lt' operators, the value "
             f'must be an integer, values[0][a]: Invalid value: "x_": {LABEL_VALUE_ERROR}]')),
    ("Foo_=x", f'unable to parse requirement: <nil>: Invalid value: "Foo_": {NAME_PART_ERROR}'),
    ("a=b_", f'unable to parse requirement: values[0][a]: Invalid value: "b_": {LABEL_VALUE_ERROR}'),
    ("a in (x_,-y)", ("unable to parse requirement: [values[0][a]: Invalid value: \"-y\": "
                     f"{LABEL_VALUE_ERROR}, values[1][a]: Invalid value: \"x_\": {LABEL_VALUE_ERROR}]")),
    ("a=" + "v" * 64, (f'unable to parse requirement: values[0][a]: Invalid value: "{"v" * 64}": '
                      "must be no more than 63 characters")),
    ("Example.com/a", ("unable to parse requirement: <nil>: Invalid value: \"Example.com/a\": prefix part a lowercase "
                      "RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must "
                      "start and end with an alphanumeric character (e.g. 'example.com', regex used for validation "
                      "is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')")),
    ("/a", 'unable to parse requirement: <nil>: Invalid value: "/a": prefix part must be non-empty'),
    ("a/b/c", ('unable to parse requirement: <nil>: Invalid value: "a/b/c": a qualified name must consist of '
              "alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character "
              f"(e.g. 'MyName', or 'my.name', or '123-abc', regex used for validation is {QNAME_REGEX}) with an "
              "optional DNS subdomain prefix and '/' (e.g. 'example.com/MyName')")),
    ("k" * 64, (f'unable to parse requirement: <nil>: Invalid value: "{"k" * 64}": '
               "name part must be no more than 63 characters")),
])
def test_label_selector_errors(text, message):
    with pytest.raises(SelectorError) as err:
        parse_label_selector(text)
    assert err.value.message == message
    assert str(err.value) == message


def test_label_value_error_quotes_like_go():
    with pytest.raises(SelectorError) as err:
        parse_label_selector('a=x"\x01é')
    assert err.value.message.startswith('unable to parse requirement: values[0][a]: Invalid value: "x\\"\\x01é": ')


# --- label selector matching ---------------------------------------------------------------------

LABELS = {"app": "web", "tier": "front", "n": "5", "empty": ""}


@pytest.mark.parametrize("text, expected", [
    ("", True),
    ("app=web", True),
    ("app==web", True),
    ("app=db", False),
    ("app!=db", True),
    ("missing!=x", True),
    ("app in (web,db)", True),
    ("app notin (web)", False),
    ("missing notin (web)", True),
    ("missing in (web)", False),
    ("app", True),
    ("missing", False),
    ("!missing", True),
    ("!app", False),
    ("empty=", True),
    ("empty in ()", True),
    ("missing=", False),
    ("n>4", True),
    ("n>5", False),
    ("n<6", True),
    ("app>1", False),  # a non-numeric label value never compares
    ("missing<9", False),
    ("app=web,tier=front", True),
    ("app=web,tier=back", False),
])
def test_label_selector_matching(text, expected):
    assert parse_label_selector(text).matches(LABELS) is expected


def test_label_selector_matches_objects_without_labels():
    assert parse_label_selector("").matches(None)
    assert parse_label_selector("!a").matches(None)
    assert not parse_label_selector("a").matches(None)
    assert parse_label_selector("").empty
    assert not parse_label_selector("a").empty


# --- metav1.LabelSelector ------------------------------------------------------------------------

def test_label_selector_from_object():
    sel = label_selector_from_object({
        "matchLabels": {"tier": "front", "app": "web"},
        "matchExpressions": [
            {"key": "env", "operator": "In", "values": ["prod", "dev"]},
            {"key": "track", "operator": "NotIn", "values": ["canary"]},
            {"key": "gpu", "operator": "Exists"},
            {"key": "legacy", "operator": "DoesNotExist"},
        ],
    })
    assert str(sel) == "app=web,env in (dev,prod),gpu,!legacy,tier=front,track notin (canary)"
    assert sel.matches({"app": "web", "tier": "front", "env": "dev", "gpu": ""})
    assert not sel.matches({"app": "web", "tier": "front", "env": "dev"})
    assert not sel.matches({"app": "web", "tier": "front", "env": "dev", "gpu": "1", "legacy": "y"})


def test_nil_and_empty_label_selector_objects():
    nothing = label_selector_from_object(None)
    assert not nothing.matches({}) and not nothing.empty and str(nothing) == ""
    everything = label_selector_from_object({})
    assert everything.matches({"a": "b"}) and everything.empty
    assert label_selector_to_string(None) == label_selector_to_string({}) == ""
    assert label_selector_to_string({"matchLabels": {"app": "web"},
                                     "matchExpressions": [{"key": "tier", "operator": "In", "values": ["b", "a"]}]}
                                    ) == "app=web,tier in (a,b)"
    assert format_label_selector({}) == "<none>"
    assert format_label_selector({"matchLabels": {"app": "web"}}) == "app=web"
    assert format_label_selector({"matchExpressions": [{"key": "a", "operator": "Bogus"}]}) == "<error>"


@pytest.mark.parametrize("sel, message", [
    ({"matchExpressions": [{"key": "a", "operator": "Bogus"}]}, '"Bogus" is not a valid label selector operator'),
    ({"matchExpressions": [{"key": "a", "operator": "In", "values": []}]},
     "values: Invalid value: []string(nil): for 'in', 'notin' operators, values set can't be empty"),
    ({"matchExpressions": [{"key": "a", "operator": "Exists", "values": ["x"]}]},
     'values: Invalid value: []string{"x"}: values set must be empty for exists and does not exist'),
    ({"matchLabels": {"a": "b_"}}, f'values[0][a]: Invalid value: "b_": {LABEL_VALUE_ERROR}'),
    ({"matchLabels": {"_a": "b"}}, f'key: Invalid value: "_a": {NAME_PART_ERROR}'),
])
def test_label_selector_object_errors(sel, message):
    with pytest.raises(SelectorError) as err:
        label_selector_from_object(sel)
    assert err.value.message == message


def test_label_selector_from_set():
    sel = label_selector_from_set({"b": "2", "a": "1"})
    assert str(sel) == "a=1,b=2"
    assert sel.matches({"a": "1", "b": "2", "c": "3"}) and not sel.matches({"a": "1"})
    assert label_selector_from_set(None).empty and label_selector_from_set({}).matches({"x": "y"})


# --- round trip property -----------------------------------------------------------------------

_ALNUM = "abcdefghijklmnopqrstuvwxyz0123456789"
_edge = st.sampled_from(_ALNUM)
_name = st.builds(lambda first, middle, last: first + middle + last, _edge,
                  st.text(alphabet=_ALNUM + "._-", max_size=8), _edge)
_domain = st.lists(st.text(alphabet=_ALNUM, min_size=1, max_size=6), min_size=1, max_size=3).map(".".join)
_key = st.one_of(_name, st.builds(lambda prefix, name: f"{prefix}/{name}", _domain, _name))
_value = st.one_of(st.just(""), _name.map(str.upper), _name)


@st.composite
def _requirement(draw) -> tuple[str, str]:
    """(key, requirement text in canonical form)."""
    key = draw(_key)
    op = draw(st.sampled_from(["=", "==", "!=", "in", "notin", "exists", "!", ">", "<"]))
    if op == "exists":
        return key, key
    if op == "!":
        return key, "!" + key
    if op in (">", "<"):
        return key, f"{key}{op}{draw(st.integers(0, 10**6))}"
    if op in ("in", "notin"):
        values = sorted(draw(st.sets(_value, min_size=1, max_size=4)))
        return key, f"{key} {op} ({','.join(values)})"
    return key, f"{key}{op}{draw(_value)}"


@settings(deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(_requirement(), max_size=6))
def test_canonical_label_selectors_round_trip(requirements):
    canonical = ",".join(text for _, text in sorted(requirements, key=lambda r: r[0]))
    parsed = parse_label_selector(canonical)
    assert str(parsed) == canonical
    assert parse_label_selector(str(parsed)) == parsed


@settings(deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(_requirement(), max_size=6), st.sampled_from(["", " ", "  ", "\t"]))
def test_whitespace_does_not_change_the_selector(requirements, pad):
    texts = [text for _, text in requirements]
    plain = parse_label_selector(",".join(texts))
    padded = parse_label_selector(pad + f"{pad},{pad}".join(texts) + pad)
    assert padded == plain


# --- field selectors -----------------------------------------------------------------------------

@pytest.mark.parametrize("text, requirements, canonical", [
    ("", [], ""),
    ("metadata.name=a", [("metadata.name", "=", "a")], "metadata.name=a"),
    ("metadata.name==a", [("metadata.name", "=", "a")], "metadata.name=a"),
    ("status.phase!=Running", [("status.phase", "!=", "Running")], "status.phase!=Running"),
    ("b=2,a=1", [("a", "=", "1"), ("b", "=", "2")], "a=1,b=2"),
    ("a=1,,b=2", [("a", "=", "1"), ("b", "=", "2")], "a=1,b=2"),
    ("a=", [("a", "=", "")], "a="),
    (r"a=x\,y\=z\\w", [("a", "=", "x,y=z\\w")], r"a=x\,y\=z\\w"),
    (r"a!=b\=c", [("a", "!=", "b=c")], r"a!=b\=c"),
    (" a = b ", [(" a ", "=", " b ")], " a = b "),
])
def test_field_selector_grammar(text, requirements, canonical):
    sel = parse_field_selector(text)
    assert sel.requirements == requirements
    assert str(sel) == canonical
    assert sel.empty is (not requirements)


@pytest.mark.parametrize("text, message", [
    ("a", "invalid selector: 'a'; can't understand 'a'"),
    ("x=a,b", "invalid selector: 'x=a,b'; can't understand 'b'"),
    ("a=b=c", "invalid field selector: unescaped character in value: 61"),
    (r"a=b\q", r"invalid field selector: invalid escape sequence: \q"),
    ("a=b\\", "invalid field selector: invalid escape sequence: \\"),
])
def test_field_selector_errors(text, message):
    with pytest.raises(SelectorError) as err:
        parse_field_selector(text)
    assert err.value.message == message


def test_field_selector_matching():
    fields = {"metadata.name": "a", "status.phase": "Running"}
    assert parse_field_selector("metadata.name=a").matches(fields)
    assert not parse_field_selector("metadata.name=b").matches(fields)
    assert parse_field_selector("status.phase!=Succeeded,status.phase!=Failed").matches(fields)
    assert not parse_field_selector("metadata.name=a,status.phase=Pending").matches(fields)
    # An absent field reads as "".
    assert parse_field_selector("spec.nodeName=").matches(fields)
    assert parse_field_selector("spec.nodeName!=n1").matches(fields)
    assert parse_field_selector("").matches({})


def test_field_selector_exact_match():
    sel = parse_field_selector("metadata.namespace!=x,metadata.name=web")
    assert sel.requires_exact_match("metadata.name") == "web"
    assert sel.requires_exact_match("metadata.namespace") is None


@settings(deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.tuples(st.from_regex(r"[a-z][a-zA-Z.]{0,12}", fullmatch=True), st.sampled_from(["=", "!="]),
                          st.text(max_size=8)), max_size=5))
def test_field_selector_round_trip(terms):
    # Parsing sorts the terms by their text, so build the selector in that order.
    sel = FieldSelector(tuple(sorted(terms, key=lambda t: str(FieldSelector((t,))))))
    assert parse_field_selector(str(sel)) == sel


# --- which fields each kind accepts ---------------------------------------------------------------

DEFAULT_MESSAGE = '"{}" is not a known field selector: only "metadata.name", "metadata.namespace"'


@pytest.mark.parametrize("resource, selector, message", [
    (("", "v1", "pods"), "metadata.name=a,metadata.namespace=b", None),
    (("", "v1", "pods"), "spec.nodeName=n1,status.phase!=Failed", None),
    (("", "v1", "pods"), "spec.host=n1", None),
    (("", "v1", "pods"), "status.hostIP=1.2.3.4", "field label not supported: status.hostIP"),
    (("", "v1", "nodes"), "spec.unschedulable=false", None),
    (("", "v1", "nodes"), "metadata.namespace=x", "field label not supported: metadata.namespace"),
    (("", "v1", "namespaces"), "status.phase=Active", None),
    (("", "v1", "secrets"), "type=Opaque", None),
    (("", "v1", "events"), "involvedObject.name=web,reason=Started,source=kubelet", None),
    (("", "v1", "configmaps"), "data.x=y", DEFAULT_MESSAGE.format("data.x")),
    (("", "v1", "configmaps"), "metadata.namespace=x", None),
    (("rbac.authorization.k8s.io", "v1", "clusterroles"), "metadata.namespace=", None),
    (("batch", "v1", "jobs"), "status.successful=1", None),
    (("batch", "v1", "jobs"), "spec.x=1", 'field label "spec.x" not supported for batchv1.Job'),
    (("batch", "v1", "cronjobs"), "status.successful=1", DEFAULT_MESSAGE.format("status.successful")),
    (("events.k8s.io", "v1", "events"), "regarding.name=web,reportingController=kubelet", None),
    (("events.k8s.io", "v1", "events"), "involvedObject.name=web", "field label not supported: involvedObject.name"),
    # Terms are checked in sorted order, so the first unsupported one in that order is named.
    (("", "v1", "configmaps"), "z=1,b=2", DEFAULT_MESSAGE.format("b")),
])
def test_check_field_selector(resource, selector, message):
    assert check_field_selector(kind(*resource), parse_field_selector(selector)) == message


def test_convert_field_selector_renames_to_the_stored_form():
    pods = kind("", "v1", "pods")
    assert convert_field_selector(pods, parse_field_selector("spec.host=n1")).requirements == [
        ("spec.nodeName", "=", "n1")]
    events = kind("events.k8s.io", "v1", "events")
    converted = convert_field_selector(events, parse_field_selector("regarding.kind=Pod,reportingController=k"))
    assert converted.requirements == [("involvedObject.kind", "=", "Pod"), ("reportingComponent", "=", "k")]
    with pytest.raises(SelectorError, match="field label not supported: source"):
        convert_field_selector(events, parse_field_selector("source=x"))


# --- selectable field values ----------------------------------------------------------------------

def test_pod_selectable_fields():
    pod = {"metadata": {"name": "p", "namespace": "ns"},
           "spec": {"nodeName": "n1", "restartPolicy": "Always", "schedulerName": "default-scheduler",
                    "serviceAccountName": "default", "hostNetwork": True},
           "status": {"phase": "Running", "podIP": "10.42.0.5", "podIPs": [{"ip": "10.42.0.5"}, {"ip": "fd00::5"}],
                      "nominatedNodeName": "n2"}}
    fields = selectable_fields(kind("", "v1", "pods"), pod)
    assert fields["metadata.name"] == "p" and fields["metadata.namespace"] == "ns"
    assert fields["spec.nodeName"] == "n1"
    assert fields["spec.hostNetwork"] == "true"
    assert fields["status.phase"] == "Running"
    assert fields["status.podIP"] == "10.42.0.5"
    assert fields["status.nominatedNodeName"] == "n2"
    # Accepted as a label upstream but never filled in, so it only ever equals "".
    assert fields.get("status.podIPs", "") == ""

    bare = selectable_fields(kind("", "v1", "pods"), {"metadata": {"name": "q", "namespace": "ns"}})
    assert bare["spec.hostNetwork"] == "false"
    assert bare["spec.nodeName"] == "" and bare["status.podIP"] == ""
    only_ips = {"metadata": {"name": "r"}, "status": {"podIPs": [{"ip": "10.42.0.9"}]}}
    assert selectable_fields(kind("", "v1", "pods"), only_ips)["status.podIP"] == "10.42.0.9"


def test_other_kinds_selectable_fields():
    node = selectable_fields(kind("", "v1", "nodes"), {"metadata": {"name": "n1"}, "spec": {"unschedulable": True}})
    assert node == {"metadata.name": "n1", "spec.unschedulable": "true"}
    assert selectable_fields(kind("", "v1", "nodes"), {"metadata": {"name": "n2"}})["spec.unschedulable"] == "false"
    job = {"metadata": {"name": "j", "namespace": "d"}, "status": {"succeeded": 3}}
    assert selectable_fields(kind("batch", "v1", "jobs"), job)["status.successful"] == "3"
    assert selectable_fields(kind("batch", "v1", "jobs"), {"metadata": {"name": "j"}})["status.successful"] == "0"
    rc = {"metadata": {"name": "r", "namespace": "d"}, "status": {"replicas": 2}}
    assert selectable_fields(kind("", "v1", "replicationcontrollers"), rc)["status.replicas"] == "2"
    secret = {"metadata": {"name": "s", "namespace": "d"}, "type": "kubernetes.io/tls"}
    assert selectable_fields(kind("", "v1", "secrets"), secret)["type"] == "kubernetes.io/tls"
    ns = {"metadata": {"name": "d"}, "status": {"phase": "Terminating"}}
    assert selectable_fields(kind("", "v1", "namespaces"), ns) == {"metadata.name": "d", "status.phase": "Terminating"}


def test_event_selectable_fields():
    event = {"metadata": {"name": "e", "namespace": "d"},
             "involvedObject": {"kind": "Pod", "name": "web", "namespace": "d", "uid": "u1", "apiVersion": "v1",
                                "resourceVersion": "7", "fieldPath": "spec.containers{c}"},
             "reason": "Started", "type": "Normal", "source": {"component": "kubelet", "host": "n1"},
             "reportingComponent": "kubelet"}
    fields = selectable_fields(kind("", "v1", "events"), event)
    assert fields["involvedObject.kind"] == "Pod" and fields["involvedObject.fieldPath"] == "spec.containers{c}"
    assert fields["source"] == "kubelet" and fields["reportingComponent"] == "kubelet"
    # "source" falls back to the reporting controller for events written through events.k8s.io.
    new_style = {"metadata": {"name": "e2", "namespace": "d"}, "reportingComponent": "scheduler"}
    assert selectable_fields(kind("", "v1", "events"), new_style)["source"] == "scheduler"

    v1_event = {"metadata": {"name": "e", "namespace": "d"}, "regarding": {"kind": "Pod", "name": "web"},
                "reportingController": "kubelet", "reason": "Started", "type": "Normal"}
    v1_fields = selectable_fields(kind("events.k8s.io", "v1", "events"), v1_event)
    assert v1_fields["regarding.kind"] == "Pod" and v1_fields["reportingController"] == "kubelet"


def test_field_selector_against_stored_events():
    core = kind("", "v1", "events")
    served = kind("events.k8s.io", "v1", "events")
    stored = {"metadata": {"name": "e", "namespace": "d"}, "involvedObject": {"kind": "Pod", "name": "web"},
              "reportingComponent": "kubelet"}
    sel = convert_field_selector(served, parse_field_selector("regarding.name=web,reportingController=kubelet"))
    assert sel.matches(selectable_fields(core, stored))
