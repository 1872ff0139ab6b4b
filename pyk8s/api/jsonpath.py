"""The part of Kubernetes JSONPath that CustomResourceDefinitions use.

Printer columns (`additionalPrinterColumns[].jsonPath`), scale paths and selectable fields are
paths like `.spec.replicas`, `.metadata.creationTimestamp`, `.spec.ports[0].port`,
`.status.conditions[?(@.type=="Ready")].status` or `.metadata.labels['app\\.kubernetes\\.io/name']`.
`parse` turns one into steps (raising JSONPathError with a message like upstream's parser),
`find` evaluates the steps against an object and returns every match, in order.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any


class JSONPathError(ValueError):
    pass


@dataclass(frozen=True)
class Field:
    name: str  # "*" matches every value of a map


@dataclass(frozen=True)
class Index:
    start: int | None  # None with end None and step 1 means [*]
    end: int | None = None
    single: bool = True


@dataclass(frozen=True)
class Filter:
    path: tuple[str, ...]  # fields under @
    op: str  # "==", "!=", "<", ">", "<=", ">=" or "" for existence
    value: Any = None


Step = Field | Index | Filter

_NAME = re.compile(r"(?:[A-Za-z0-9_\-/$]|\\\.)+")  # "\." is a dot inside a name (label keys)
_FILTER = re.compile(r"\?\(\s*@((?:\.[A-Za-z0-9_\-]+)+)\s*(?:(==|!=|<=|>=|<|>)\s*(.+?))?\s*\)")


def _literal(text: str) -> Any:
    text = text.strip()
    if len(text) >= 2 and text[0] == text[-1] and text[0] in "'\"":
        return text[1:-1]
    if text in ("true", "false"):
        return text == "true"
    try:
        return int(text)
    except ValueError:
        pass
    try:
        return float(text)
    except ValueError:
        raise JSONPathError(f"unrecognized filter value {text}") from None


def _bracket(body: str) -> Step:
    body = body.strip()
    if body == "*":
        return Index(None, None, single=False)
    if len(body) >= 2 and body[0] == body[-1] and body[0] in "'\"":
        return Field(body[1:-1].replace("\\.", "."))
    match = _FILTER.fullmatch(body)
    if match:
        path = tuple(match.group(1)[1:].split("."))
        op = match.group(2) or ""
        return Filter(path, op, _literal(match.group(3)) if op else None)
    if ":" in body:
        parts = body.split(":")
        try:
            start = int(parts[0]) if parts[0].strip() else None
            end = int(parts[1]) if parts[1].strip() else None
        except ValueError:
            raise JSONPathError(f"invalid array index {body}") from None
        return Index(start, end, single=False)
    try:
        return Index(int(body))
    except ValueError:
        raise JSONPathError(f"invalid array index {body}") from None


def parse(path: str) -> tuple[Step, ...]:
    """`.a.b[0]` (optionally wrapped in `{...}`) as steps; JSONPathError when it is not a path."""
    text = path.strip()
    if text.startswith("{") and text.endswith("}"):
        text = text[1:-1].strip()
    if not text.startswith(".") and not text.startswith("["):
        raise JSONPathError(f"unrecognized character in action: U+{ord(text[0]):04X} {text[0]!r}"
                            if text else "empty path")
    steps: list[Step] = []
    i = 0
    while i < len(text):
        char = text[i]
        if char == ".":
            if text[i + 1:i + 2] == ".":
                raise JSONPathError("recursive descent is not supported")
            match = _NAME.match(text, i + 1)
            if match is None:
                if i + 1 == len(text) and not steps:
                    return ()  # "." is the whole object
                raise JSONPathError(f"invalid field name at {text[i:]!r}")
            steps.append(Field(match.group(0).replace("\\.", ".")))
            i = match.end()
        elif char == "[":
            depth, j = 0, i
            while j < len(text):
                if text[j] == "[":
                    depth += 1
                elif text[j] == "]":
                    depth -= 1
                    if depth == 0:
                        break
                j += 1
            if j >= len(text):
                raise JSONPathError("unterminated array")
            steps.append(_bracket(text[i + 1:j]))
            i = j + 1
        else:
            raise JSONPathError(f"unrecognized character in action: U+{ord(char):04X} {char!r}")
    return tuple(steps)


def _compare(value: Any, op: str, expected: Any) -> bool:
    if op == "==":
        return value == expected
    if op == "!=":
        return value != expected
    if not isinstance(value, (int, float)) or not isinstance(expected, (int, float)) or isinstance(value, bool):
        return False
    return {"<": value < expected, ">": value > expected, "<=": value <= expected, ">=": value >= expected}[op]


def _step(values: list[Any], step: Step) -> list[Any]:
    out: list[Any] = []
    for value in values:
        if isinstance(step, Field):
            if isinstance(value, dict):
                if step.name == "*":
                    out.extend(value.values())
                elif step.name in value:
                    out.append(value[step.name])
        elif isinstance(step, Index):
            if not isinstance(value, list):
                continue
            if step.single:
                idx = step.start if step.start is not None and step.start >= 0 else len(value) + (step.start or 0)
                if 0 <= idx < len(value):
                    out.append(value[idx])
            else:
                out.extend(value[step.start:step.end])
        else:
            items = value if isinstance(value, list) else list(value.values()) if isinstance(value, dict) else []
            for item in items:
                found = [item]
                for name in step.path:
                    found = [f[name] for f in found if isinstance(f, dict) and name in f]
                if not step.op:
                    if found:
                        out.append(item)
                elif found and _compare(found[0], step.op, step.value):
                    out.append(item)
    return out


def find(obj: Any, steps: tuple[Step, ...]) -> list[Any]:
    """Every value at `steps` in `obj`."""
    values = [obj]
    for step in steps:
        values = _step(values, step)
        if not values:
            break
    return values


def is_simple(steps: tuple[Step, ...]) -> bool:
    """Only field names: what scale paths and selectable fields allow."""
    return all(isinstance(s, Field) and s.name != "*" for s in steps)
