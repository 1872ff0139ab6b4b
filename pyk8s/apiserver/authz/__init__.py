"""Authorization: who may do what (upstream's authorizer chain: privileged group, then RBAC).

`Attributes` describe a request, an `Authorizer` answers it with a `Decision`, and
`forbidden(attrs, reason)` is the 403 a denied request gets, worded as upstream.
"""

from __future__ import annotations

from typing import Protocol

from .attributes import Attributes, Decision, forbidden, forbidden_message


class Authorizer(Protocol):
    def authorize(self, attrs: Attributes) -> Decision: ...


__all__ = ["Attributes", "Authorizer", "Decision", "forbidden", "forbidden_message"]
