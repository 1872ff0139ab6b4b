"""Label and field selectors with apimachinery's grammar, semantics and error messages.

Label selectors follow k8s.io/apimachinery/pkg/labels (the lexer/parser, requirement
validation and canonical String()); field selectors follow pkg/fields (term splitting,
`\\` escaping, sorted terms). Which field labels a kind accepts and the message for the ones
it does not follow the field-label conversion functions kube-apiserver v1.32 registers.
Error messages are reproduced verbatim because clients show them to users.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

from .gofmt import quote

if TYPE_CHECKING:
    from .kinds import Kind


class SelectorError(ValueError):
    """A selector that does not parse or validate; the apiserver answers it with 400 BadRequest."""

    def __init__(self, message: str):
        super().__init__(message)
        self.message = message


# ---------------------------------------------------------------------------------------------
# Validation of keys and values (apimachinery util/validation), with upstream's wording.

_QNAME_FMT = "([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]"
_QNAME_RE = re.compile(_QNAME_FMT)
_QNAME_MSG = ("must consist of alphanumeric characters, '-', '_' or '.', "
              "and must start and end with an alphanumeric character")
_LABEL_VALUE_FMT = f"({_QNAME_FMT})?"
_LABEL_VALUE_RE = re.compile(_LABEL_VALUE_FMT)
_LABEL_VALUE_MSG = ("a valid label must be an empty string or consist of alphanumeric characters, "
                    "'-', '_' or '.', and must start and end with an alphanumeric character")
_DNS1123_LABEL_FMT = "[a-z0-9]([-a-z0-9]*[a-z0-9])?"
_DNS1123_SUBDOMAIN_FMT = _DNS1123_LABEL_FMT + "(\\." + _DNS1123_LABEL_FMT + ")*"
_DNS1123_SUBDOMAIN_RE = re.compile(_DNS1123_SUBDOMAIN_FMT)
_DNS1123_SUBDOMAIN_MSG = ("a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, "
                          "'-' or '.', and must start and end with an alphanumeric character")


def _regex_error(msg: str, fmt: str, *examples: str) -> str:
    shown = "".join(f"{'or ' if i else ''}'{example}', " for i, example in enumerate(examples))
    return f"{msg} (e.g. {shown}regex used for validation is '{fmt}')"


def _byte_len(s: str) -> int:
    # Go measures strings in bytes.
    return len(s.encode("utf-8", "surrogatepass"))


def _dns1123_subdomain_errors(value: str) -> list[str]:
    errs = []
    if _byte_len(value) > 253:
        errs.append("must be no more than 253 characters")
    if not _DNS1123_SUBDOMAIN_RE.fullmatch(value):
        errs.append(_regex_error(_DNS1123_SUBDOMAIN_MSG, _DNS1123_SUBDOMAIN_FMT, "example.com"))
    return errs


def qualified_name_errors(value: str) -> list[str]:
    """validation.IsQualifiedName: `[prefix/]name` as used for label and annotation keys."""
    errs: list[str] = []
    parts = value.split("/")
    if len(parts) == 1:
        name = parts[0]
    elif len(parts) == 2:
        prefix, name = parts
        if not prefix:
            errs.append("prefix part must be non-empty")
        else:
            errs.extend("prefix part " + e for e in _dns1123_subdomain_errors(prefix))
    else:
        return [
            "a qualified name " + _regex_error(_QNAME_MSG, _QNAME_FMT, "MyName", "my.name", "123-abc")
            + " with an optional DNS subdomain prefix and '/' (e.g. 'example.com/MyName')"
        ]
    if not name:
        errs.append("name part must be non-empty")
    elif _byte_len(name) > 63:
        errs.append("name part must be no more than 63 characters")
    if not _QNAME_RE.fullmatch(name):
        errs.append("name part " + _regex_error(_QNAME_MSG, _QNAME_FMT, "MyName", "my.name", "123-abc"))
    return errs


def label_value_errors(value: str) -> list[str]:
    """validation.IsValidLabelValue."""
    errs = []
    if _byte_len(value) > 63:
        errs.append("must be no more than 63 characters")
    if not _LABEL_VALUE_RE.fullmatch(value):
        errs.append(_regex_error(_LABEL_VALUE_MSG, _LABEL_VALUE_FMT, "MyValue", "my_value", "12345"))
    return errs




def _go_value(value: str | list[str]) -> str:
    if isinstance(value, str):
        return quote(value)
    # %#v of a []string; the values slice is nil whenever it is empty.
    if not value:
        return "[]string(nil)"
    return "[]string{" + ", ".join(quote(v) for v in value) + "}"


def _invalid(path: str, value: str | list[str], detail: str) -> str:
    return f"{path}: Invalid value: {_go_value(value)}: {detail}"


def _aggregate(messages: list[str]) -> str:
    """utilerrors.NewAggregate(...).Error(): duplicates dropped, several shown as a bracketed list."""
    unique = list(dict.fromkeys(messages))
    return unique[0] if len(unique) == 1 else "[" + ", ".join(unique) + "]"


# ---------------------------------------------------------------------------------------------
# Label selectors.

IN, NOT_IN, EQUALS, DOUBLE_EQUALS, NOT_EQUALS = "in", "notin", "=", "==", "!="
EXISTS, DOES_NOT_EXIST, GREATER_THAN, LESS_THAN = "exists", "!", "gt", "lt"
# selection.Operator values in the order apimachinery lists them in "expected: ..." messages.
_BINARY_OPERATORS = (IN, NOT_IN, EQUALS, DOUBLE_EQUALS, NOT_EQUALS, GREATER_THAN, LESS_THAN)
_INT64_RE = re.compile(r"[+-]?[0-9]+")


def _parse_int64(s: str) -> int | None:
    """strconv.ParseInt(s, 10, 64); Python's int() would also take spaces and underscores."""
    if not _INT64_RE.fullmatch(s):
        return None
    n = int(s)
    return n if -(2**63) <= n < 2**63 else None


@dataclass(frozen=True)
class Requirement:
    key: str
    operator: str
    values: tuple[str, ...] = ()

    def matches(self, labels: Mapping[str, str]) -> bool:
        op = self.operator
        if op in (IN, EQUALS, DOUBLE_EQUALS):
            return self.key in labels and labels[self.key] in self.values
        if op in (NOT_IN, NOT_EQUALS):
            return self.key not in labels or labels[self.key] not in self.values
        if op == EXISTS:
            return self.key in labels
        if op == DOES_NOT_EXIST:
            return self.key not in labels
        if op in (GREATER_THAN, LESS_THAN):
            if self.key not in labels or len(self.values) != 1:
                return False
            have, want = _parse_int64(labels[self.key]), _parse_int64(self.values[0])
            if have is None or want is None:
                return False
            return have > want if op == GREATER_THAN else have < want
        return False

    def __str__(self) -> str:
        op = self.operator
        if op == EXISTS:
            return self.key
        if op == DOES_NOT_EXIST:
            return "!" + self.key
        # Values print sorted; the requirement itself keeps the order it was given.
        values = ",".join(sorted(self.values))
        if op in (IN, NOT_IN):
            return f"{self.key} {op} ({values})"
        symbol = {GREATER_THAN: ">", LESS_THAN: "<"}.get(op, op)
        return f"{self.key}{symbol}{values}"


def new_requirement(key: str, operator: str, values: list[str]) -> Requirement:
    """labels.NewRequirement: validates and raises SelectorError with upstream's aggregated message."""
    errs = []
    key_errs = qualified_name_errors(key)
    if key_errs:
        errs.append(_invalid("key", key, "; ".join(key_errs)))
    if operator in (IN, NOT_IN):
        if not values:
            errs.append(_invalid("values", values, "for 'in', 'notin' operators, values set can't be empty"))
    elif operator in (EQUALS, DOUBLE_EQUALS, NOT_EQUALS):
        if len(values) != 1:
            errs.append(_invalid("values", values, "exact-match compatibility requires one single value"))
    elif operator in (EXISTS, DOES_NOT_EXIST):
        if values:
            errs.append(_invalid("values", values, "values set must be empty for exists and does not exist"))
    elif operator in (GREATER_THAN, LESS_THAN):
        if len(values) != 1:
            errs.append(_invalid("values", values, "for 'Gt', 'Lt' operators, exactly one value is required"))
        for i, value in enumerate(values):
            if _parse_int64(value) is None:
                errs.append(_invalid(f"values[{i}]", value, "for 'Gt', 'Lt' operators, the value must be an integer"))
    else:
        supported = ", ".join(f'"{op}"' for op in (*_BINARY_OPERATORS, EXISTS, DOES_NOT_EXIST))
        errs.append(f"operator: Unsupported value: {quote(operator)}: supported values: {supported}")
    for i, value in enumerate(values):
        value_errs = label_value_errors(value)
        if value_errs:
            errs.append(_invalid(f"values[{i}][{key}]", value, "; ".join(value_errs)))
    if errs:
        raise SelectorError(_aggregate(errs))
    return Requirement(key, operator, tuple(values))


@dataclass(frozen=True)
class LabelSelector:
    requirements: tuple[Requirement, ...] = ()
    # A nil metav1.LabelSelector selects nothing (labels.Nothing()), unlike an empty one.
    nothing: bool = False

    @property
    def empty(self) -> bool:
        """True when the selector does not restrict anything (matches every object)."""
        return not self.nothing and not self.requirements

    def matches(self, labels: Mapping[str, str] | None) -> bool:
        if self.nothing:
            return False
        labels = labels or {}
        return all(r.matches(labels) for r in self.requirements)

    def __str__(self) -> str:
        return ",".join(str(r) for r in self.requirements)


def _sorted_by_key(requirements: list[Requirement]) -> tuple[Requirement, ...]:
    return tuple(sorted(requirements, key=lambda r: r.key))


# Lexer tokens.
_EOS, _CLOSE, _COMMA, _NOT, _DEQ, _EQ, _GT, _ID, _IN, _LT, _NEQ, _NOTIN, _OPEN = range(13)
_TOKENS = {")": _CLOSE, ",": _COMMA, "!": _NOT, "==": _DEQ, "=": _EQ, ">": _GT, "in": _IN, "<": _LT,
           "!=": _NEQ, "notin": _NOTIN, "(": _OPEN}
_SPECIAL = frozenset("=!(),><")
_WHITESPACE = frozenset(" \t\r\n")
_END = "\0"  # the Go lexer reads a 0 byte at the end of input, so a NUL in the input acts the same


class _Lexer:
    def __init__(self, s: str):
        self.s, self.pos = s, 0

    def _read(self) -> str:
        if self.pos < len(self.s):
            self.pos += 1
            return self.s[self.pos - 1]
        return _END

    def _unread(self) -> None:
        self.pos -= 1

    def lex(self) -> tuple[int, str]:
        ch = self._read()
        while ch in _WHITESPACE:
            ch = self._read()
        if ch == _END:
            return _EOS, ""
        self._unread()
        return self._special() if ch in _SPECIAL else self._identifier()

    def _identifier(self) -> tuple[int, str]:
        buf = []
        while True:
            ch = self._read()
            if ch == _END:
                break
            if ch in _SPECIAL or ch in _WHITESPACE:
                self._unread()
                break
            buf.append(ch)
        lit = "".join(buf)
        return _TOKENS.get(lit, _ID), lit

    def _special(self) -> tuple[int, str]:
        # Longest run of special characters that is a token: "!=" and "==" win over "!" and "=".
        buf = self._read()
        token = (_TOKENS[buf], buf)
        while True:
            ch = self._read()
            if ch == _END:
                break
            if ch not in _SPECIAL:
                self._unread()
                break
            buf += ch
            if buf not in _TOKENS:
                self._unread()
                break
            token = (_TOKENS[buf], buf)
        return token


_KEY_AND_OPERATOR, _VALUES = 0, 1


class _Parser:
    def __init__(self, s: str):
        lexer = _Lexer(s)
        self.items: list[tuple[int, str]] = []
        while True:
            item = lexer.lex()
            self.items.append(item)
            if item[0] == _EOS:
                break
        self.pos = 0

    @staticmethod
    def _in_context(item: tuple[int, str], context: int) -> tuple[int, str]:
        # "in"/"notin" are plain identifiers wherever a key or value is expected.
        if context == _VALUES and item[0] in (_IN, _NOTIN):
            return _ID, item[1]
        return item

    def lookahead(self, context: int) -> tuple[int, str]:
        return self._in_context(self.items[self.pos], context)

    def consume(self, context: int) -> tuple[int, str]:
        self.pos += 1
        return self._in_context(self.items[self.pos - 1], context)

    def parse(self) -> list[Requirement]:
        requirements = []
        while True:
            tok, lit = self.lookahead(_VALUES)
            if tok in (_ID, _NOT):
                try:
                    requirements.append(self._requirement())
                except SelectorError as exc:
                    raise SelectorError(f"unable to parse requirement: {exc.message}") from None
                tok, lit = self.consume(_VALUES)
                if tok == _EOS:
                    return requirements
                if tok == _COMMA:
                    tok2, lit2 = self.lookahead(_VALUES)
                    if tok2 not in (_ID, _NOT):
                        raise SelectorError(f"found '{lit2}', expected: identifier after ','")
                else:
                    raise SelectorError(f"found '{lit}', expected: ',' or 'end of string'")
            elif tok == _EOS:
                return requirements
            else:
                raise SelectorError(f"found '{lit}', expected: !, identifier, or 'end of string'")

    def _requirement(self) -> Requirement:
        key, operator = self._key_and_inferred_operator()
        if operator in (EXISTS, DOES_NOT_EXIST):
            return new_requirement(key, operator, [])
        operator = self._operator()
        values = self._values() if operator in (IN, NOT_IN) else self._exact_value()
        return new_requirement(key, operator, sorted(values))

    def _key_and_inferred_operator(self) -> tuple[str, str]:
        operator = ""
        tok, lit = self.consume(_VALUES)
        if tok == _NOT:
            operator = DOES_NOT_EXIST
            tok, lit = self.consume(_VALUES)
        if tok != _ID:
            raise SelectorError(f"found '{lit}', expected: identifier")
        key_errs = qualified_name_errors(lit)
        if key_errs:
            # The parser validates the key with a nil field path, which Go prints as "<nil>".
            raise SelectorError(_invalid("<nil>", lit, "; ".join(key_errs)))
        if self.lookahead(_VALUES)[0] in (_EOS, _COMMA) and operator != DOES_NOT_EXIST:
            operator = EXISTS
        return lit, operator

    def _operator(self) -> str:
        tok, lit = self.consume(_KEY_AND_OPERATOR)
        operator = {_IN: IN, _EQ: EQUALS, _DEQ: DOUBLE_EQUALS, _GT: GREATER_THAN, _LT: LESS_THAN,
                    _NOTIN: NOT_IN, _NEQ: NOT_EQUALS}.get(tok)
        if operator is None:
            raise SelectorError(f"found '{lit}', expected: {', '.join(_BINARY_OPERATORS)}")
        return operator

    def _values(self) -> set[str]:
        tok, lit = self.consume(_VALUES)
        if tok != _OPEN:
            raise SelectorError(f"found '{lit}' expected: '('")
        tok, lit = self.lookahead(_VALUES)
        if tok in (_ID, _COMMA):
            values = self._identifier_list()
            self.consume(_VALUES)  # the ")" the list stopped at
            return values
        if tok == _CLOSE:  # "()" is the set holding the empty string
            self.consume(_VALUES)
            return {""}
        raise SelectorError(f"found '{lit}', expected: ',', ')' or identifier")

    def _identifier_list(self) -> set[str]:
        # A possibly empty list of possibly empty identifiers: "(a,,b)", "(,a)", "(a,)".
        values: set[str] = set()
        while True:
            tok, lit = self.consume(_VALUES)
            if tok == _ID:
                values.add(lit)
                tok2, lit2 = self.lookahead(_VALUES)
                if tok2 == _CLOSE:
                    return values
                if tok2 != _COMMA:
                    raise SelectorError(f"found '{lit2}', expected: ',' or ')'")
            elif tok == _COMMA:
                if not values:
                    values.add("")
                tok2 = self.lookahead(_VALUES)[0]
                if tok2 == _CLOSE:
                    values.add("")
                    return values
                if tok2 == _COMMA:
                    self.consume(_VALUES)
                    values.add("")
            else:
                raise SelectorError(f"found '{lit}', expected: ',', or identifier")

    def _exact_value(self) -> set[str]:
        if self.lookahead(_VALUES)[0] in (_EOS, _COMMA):
            return {""}
        tok, lit = self.consume(_VALUES)
        if tok == _ID:
            return {lit}
        raise SelectorError(f"found '{lit}', expected: identifier")


def parse_label_selector(s: str) -> LabelSelector:
    """labels.Parse: `a=b,c!=d,e in (f,g),!h,i>3`; requirements come out sorted by key."""
    return LabelSelector(_sorted_by_key(_Parser(s).parse()))


_SELECTOR_OPERATORS = {"In": IN, "NotIn": NOT_IN, "Exists": EXISTS, "DoesNotExist": DOES_NOT_EXIST}


def label_selector_from_object(sel: Mapping | None) -> LabelSelector:
    """metav1.LabelSelectorAsSelector: nil selects nothing, {} selects everything."""
    if sel is None:
        return LabelSelector(nothing=True)
    match_labels = sel.get("matchLabels") or {}
    expressions = sel.get("matchExpressions") or []
    requirements = [new_requirement(k, EQUALS, [v]) for k, v in match_labels.items()]
    for expr in expressions:
        operator = _SELECTOR_OPERATORS.get(expr.get("operator", ""))
        if operator is None:
            raise SelectorError(f"{quote(expr.get('operator', ''))} is not a valid label selector operator")
        requirements.append(new_requirement(expr.get("key", ""), operator, list(expr.get("values") or [])))
    return LabelSelector(_sorted_by_key(requirements))


def label_selector_from_set(labels: Mapping[str, str] | None) -> LabelSelector:
    """labels.SelectorFromSet (map selectors of Services and ReplicationControllers): no validation."""
    return LabelSelector(_sorted_by_key([Requirement(k, EQUALS, (v,)) for k, v in (labels or {}).items()]))


def label_selector_to_string(sel: Mapping | None) -> str:
    """LabelSelectorAsSelector(sel).String(): what a Scale's status.selector holds ("" for nil or {})."""
    return str(label_selector_from_object(sel))


def format_label_selector(sel: Mapping | None) -> str:
    """metav1.FormatLabelSelector, as printed in table columns: "<none>" when empty, "<error>" if invalid."""
    try:
        text = label_selector_to_string(sel)
    except SelectorError:
        return "<error>"
    return text or "<none>"


# ---------------------------------------------------------------------------------------------
# Field selectors.


def escape_field_value(value: str) -> str:
    return value.replace("\\", "\\\\").replace(",", "\\,").replace("=", "\\=")


def _unescape_field_value(s: str) -> str:
    if not any(c in s for c in "\\,="):
        return s
    out, in_slash = [], False
    for c in s:
        if in_slash:
            if c not in "\\,=":
                raise SelectorError(f"invalid field selector: invalid escape sequence: \\{c}")
            out.append(c)
            in_slash = False
        elif c == "\\":
            in_slash = True
        elif c in ",=":
            # Go prints the rune with %v, i.e. as its code point number.
            raise SelectorError(f"invalid field selector: unescaped character in value: {ord(c)}")
        else:
            out.append(c)
    if in_slash:
        raise SelectorError("invalid field selector: invalid escape sequence: \\")
    return "".join(out)


def _split_terms(s: str) -> list[str]:
    """Split on commas that are not backslash-escaped; escapes stay in the terms."""
    if not s:
        return []
    terms, start, in_slash = [], 0, False
    for i, c in enumerate(s):
        if in_slash:
            in_slash = False
        elif c == "\\":
            in_slash = True
        elif c == ",":
            terms.append(s[start:i])
            start = i + 1
    terms.append(s[start:])
    return terms


def _split_term(term: str) -> tuple[str, str, str] | None:
    # The first operator occurrence splits; "!=" and "==" are tried before "=" at each position.
    for i in range(len(term)):
        for op in ("!=", "==", "="):
            if term.startswith(op, i):
                return term[:i], op, term[i + len(op):]
    return None


@dataclass(frozen=True)
class FieldSelector:
    # (field, operator, value) with operator "=" or "!="; "==" parses to "=" as upstream does.
    terms: tuple[tuple[str, str, str], ...] = ()

    @property
    def requirements(self) -> list[tuple[str, str, str]]:
        return list(self.terms)

    @property
    def empty(self) -> bool:
        return not self.terms

    def matches(self, fields: Mapping[str, str]) -> bool:
        # An absent field compares as the empty string.
        for field, op, value in self.terms:
            if (fields.get(field, "") == value) != (op == "="):
                return False
        return True

    def requires_exact_match(self, field: str) -> str | None:
        """The value `field` must equal for anything to match, if the selector pins it."""
        for name, op, value in self.terms:
            if name == field and op == "=":
                return value
        return None

    def __str__(self) -> str:
        return ",".join(f"{f}{op}{escape_field_value(v)}" for f, op, v in self.terms)


def parse_field_selector(s: str) -> FieldSelector:
    """fields.ParseSelector: `a=b,c!=d`, values escape `\\`, `,` and `=` with a backslash."""
    terms = []
    for part in sorted(_split_terms(s)):
        if not part:
            continue
        split = _split_term(part)
        if split is None:
            raise SelectorError(f"invalid selector: '{s}'; can't understand '{part}'")
        field, op, raw = split
        terms.append((field, "!=" if op == "!=" else "=", _unescape_field_value(raw)))
    return FieldSelector(tuple(terms))


# What kube-apiserver accepts per kind: a kind that registers a field-label conversion function
# (every kind with extra selectable fields) answers "field label not supported: X" and accepts
# metadata.namespace only when namespaced; the others get the default conversion, which accepts
# exactly metadata.name and metadata.namespace (also on cluster-scoped kinds).
_UNSUPPORTED_FIELD_MESSAGES: dict[tuple[str, str], str] = {
    ("batch", "Job"): 'field label "{label}" not supported for batchv1.Job',
}
# Labels a served form renames to the names of its stored form (the internal names upstream matches on).
_FIELD_LABEL_ALIASES: dict[tuple[str, str, str], dict[str, str]] = {
    ("", "v1", "Pod"): {"spec.host": "spec.nodeName"},
    ("events.k8s.io", "v1", "Event"): {
        **{f"regarding.{f}": f"involvedObject.{f}"
           for f in ("kind", "namespace", "name", "uid", "apiVersion", "resourceVersion", "fieldPath")},
        "reportingController": "reportingComponent",
    },
}


def _convert_field_label(kind: Kind, label: str) -> str:
    custom = bool(kind.selectable_fields)
    aliases = _FIELD_LABEL_ALIASES.get((kind.group, kind.version, kind.kind), {})
    if (label == "metadata.name" or label in kind.selectable_fields or label in aliases
            or (label == "metadata.namespace" and (kind.namespaced or not custom))):
        return aliases.get(label, label)
    if not custom:
        raise SelectorError(f'"{label}" is not a known field selector: only "metadata.name", "metadata.namespace"')
    template = _UNSUPPORTED_FIELD_MESSAGES.get((kind.group, kind.kind), "field label not supported: {label}")
    raise SelectorError(template.format(label=label))


def convert_field_selector(kind: Kind, sel: FieldSelector) -> FieldSelector:
    """Check `sel` against the served `kind` and rename its fields to those of the stored form.

    Match the result against `selectable_fields(storage kind, stored object)`. Raises SelectorError
    with kube-apiserver's message for the first unsupported field (terms are in sorted order).
    """
    return FieldSelector(tuple((_convert_field_label(kind, f), op, v) for f, op, v in sel.terms))


def check_field_selector(kind: Kind, sel: FieldSelector) -> str | None:
    """kube-apiserver's message for the first field `kind` does not support, or None."""
    try:
        convert_field_selector(kind, sel)
    except SelectorError as exc:
        return exc.message
    return None


def _lookup(obj: Mapping, path: str) -> object:
    node: object = obj
    for part in path.split("."):
        if not isinstance(node, Mapping):
            return None
        node = node.get(part)
    return node


def _go_string(value: object, default: str = "") -> str:
    if value is None:
        return default
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (str, int)):
        return str(value)
    return default


def _pod_ip(obj: Mapping) -> str:
    # Upstream reads the first of status.podIPs, which conversion fills from status.podIP.
    status = obj.get("status") or {}
    if status.get("podIP"):
        return str(status["podIP"])
    pod_ips = status.get("podIPs") or []
    return str((pod_ips[0] or {}).get("ip", "")) if pod_ips else ""


def _event_source(obj: Mapping) -> str:
    return _go_string(_lookup(obj, "source.component")) or _go_string(obj.get("reportingComponent"))


# Fields whose value is not simply the string at their path (ToSelectableFields of each strategy).
_FIELD_VALUES: dict[str, Callable[[Mapping], str]] = {
    "spec.hostNetwork": lambda o: _go_string(_lookup(o, "spec.hostNetwork"), "false"),
    "spec.unschedulable": lambda o: _go_string(_lookup(o, "spec.unschedulable"), "false"),
    "status.podIP": _pod_ip,
    # Accepted by the Pod conversion function but never put in the field set: always "".
    "status.podIPs": lambda o: "",
    "status.replicas": lambda o: _go_string(_lookup(o, "status.replicas"), "0"),
    "status.successful": lambda o: _go_string(_lookup(o, "status.succeeded"), "0"),
    "source": _event_source,
}


def selectable_fields(kind: Kind, obj: Mapping) -> dict[str, str]:
    """The field set a field selector is matched against for `obj` (in `kind`'s form)."""
    meta = obj.get("metadata") or {}
    fields = {"metadata.name": _go_string(meta.get("name"))}
    if kind.namespaced:
        fields["metadata.namespace"] = _go_string(meta.get("namespace"))
    for path in kind.selectable_fields:
        extract = _FIELD_VALUES.get(path)
        fields[path] = extract(obj) if extract is not None else _go_string(_lookup(obj, path))
    return fields
