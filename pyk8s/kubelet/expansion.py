"""`$(VAR)` expansion in container env values, command/args and subPathExpr, with upstream's rules
(third_party/forked/golang/expansion): `$$` is an escaped `$`, `$(NAME)` is replaced when NAME is known and
kept verbatim when it is not, an unclosed `$(` and a `$` before anything else are left as they are."""

from __future__ import annotations

from collections.abc import Callable, Mapping

Lookup = Callable[[str], str]


def mapping_for(*contexts: Mapping[str, str]) -> Lookup:
    """Look a name up in each context in turn; unknown names stay as the literal `$(NAME)`."""
    def lookup(name: str) -> str:
        for context in contexts:
            if name in context:
                return context[name]
        return f"$({name})"
    return lookup


def expand(text: str, lookup: Lookup) -> str:
    out: list[str] = []
    checkpoint = 0
    cursor = 0
    while cursor < len(text):
        if text[cursor] == "$" and cursor + 1 < len(text):
            out.append(text[checkpoint:cursor])
            following = text[cursor + 1]
            if following == "$":
                out.append("$")  # escaped operator
            elif following == "(":
                closer = text.find(")", cursor + 2)
                if closer == -1:
                    out.append("$(")  # incomplete reference: kept as written
                else:
                    out.append(lookup(text[cursor + 2:closer]))
                    cursor = closer - 1
            else:
                out.append("$" + following)
            cursor += 1
            checkpoint = cursor + 1
        cursor += 1
    out.append(text[checkpoint:])
    return "".join(out)
