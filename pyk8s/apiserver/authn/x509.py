"""x509 client certificates: the handshake already verified the chain against the cluster CA, so
the certificate's subject is the identity (upstream's CommonNameUserConversion: user = CN,
groups = O values)."""

from __future__ import annotations

from ...server.pki import client_identity
from . import UserInfo


def certificate_user(peercert: dict | None) -> UserInfo | None:
    """The user a verified peer certificate (as `SSLObject.getpeercert()` returns it) names, if any."""
    identity = client_identity(peercert)
    if identity is None:
        return None
    user, groups = identity
    return UserInfo(user, groups=tuple(groups))
