"""What an admission plugin sees and may do (upstream k8s.io/apiserver/pkg/admission/interfaces.go)."""

from __future__ import annotations

from dataclasses import dataclass, field

from ...api import errors
from ...api.errors import APIError
from ...api.kinds import Kind

CREATE, UPDATE, DELETE, CONNECT = "CREATE", "UPDATE", "DELETE", "CONNECT"


@dataclass
class Attributes:
    """One write request as admission sees it. `obj` is the object being written (mutating
    plugins change it in place); `old` the stored object on UPDATE and DELETE."""

    kind: Kind
    operation: str
    namespace: str
    name: str
    obj: dict | None
    old: dict | None = None
    subresource: str = ""
    dry_run: bool = False
    user: object | None = None  # authn.UserInfo; None for the apiserver's own writes
    warnings: list[str] = field(default_factory=list)

    @property
    def resource(self) -> tuple[str, str]:
        return self.kind.group, self.kind.plural

    def is_pod(self) -> bool:
        return self.kind.group == "" and self.kind.plural == "pods"

    @property
    def user_name(self) -> str:
        return getattr(self.user, "name", "")

    def forbidden(self, why: str) -> APIError:
        """A 403 naming the object as upstream's admission.NewForbidden does: its name, or its
        generateName when the name is not generated yet."""
        name = self.name
        if not name and self.obj is not None:
            name = (self.obj.get("metadata") or {}).get("generateName", "")
        return errors.forbidden_error(self.kind.plural, self.kind.group, name or "Unknown", why)


class AdmissionPlugin:
    """A plugin mutates (`admit`), validates (`validate`) or both; `handles` filters cheaply
    before either runs. Plugins raise APIError to refuse."""

    name = ""
    mutating = False
    validating = False

    def handles(self, attrs: Attributes) -> bool:
        return True

    async def admit(self, attrs: Attributes) -> None: ...

    async def validate(self, attrs: Attributes) -> None: ...
