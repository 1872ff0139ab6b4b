"""Kubeconfig files for clients, and the static token file kube-apiserver accepts (--token-auth-file)."""

from __future__ import annotations

import base64
import csv
import io
import logging
from pathlib import Path

import yaml

from .pki import write_atomic

log = logging.getLogger("pyk8s.kubeconfig")


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def kubeconfig_yaml(server_url: str, ca_pem: bytes, cert_pem: bytes, key_pem: bytes, *,
                    cluster_name: str = "default", user: str = "default", context: str = "default") -> str:
    """A kubeconfig with one cluster, user and context, credentials embedded as *-data fields."""
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"cluster": {"certificate-authority-data": _b64(ca_pem), "server": server_url},
                      "name": cluster_name}],
        "contexts": [{"context": {"cluster": cluster_name, "user": user}, "name": context}],
        "current-context": context,
        "preferences": {},
        "users": [{"name": user, "user": {"client-certificate-data": _b64(cert_pem),
                                          "client-key-data": _b64(key_pem)}}],
    }
    return yaml.safe_dump(config, sort_keys=False, default_flow_style=False)


def write_kubeconfig(path: Path, server_url: str, ca_pem: bytes, cert_pem: bytes, key_pem: bytes, *,
                     cluster_name: str = "default", user: str = "default", context: str = "default") -> None:
    """Write the kubeconfig atomically with mode 0600 (it holds a private key)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    text = kubeconfig_yaml(server_url, ca_pem, cert_pem, key_pem, cluster_name=cluster_name, user=user,
                           context=context)
    write_atomic(path, text.encode(), 0o600)


def load_token_file(path: Path) -> dict[str, tuple[str, str, list[str]]]:
    """Parse a static token file: CSV rows `token,user,uid[,"group1,group2"]`.

    Same rules as kube-apiserver: fewer than three columns is an error, rows with an empty token
    are skipped, a later duplicate token wins, and the groups column is split on commas.
    """
    text = Path(path).read_text(encoding="utf-8")
    tokens: dict[str, tuple[str, str, list[str]]] = {}
    record_num = 0
    for record in csv.reader(io.StringIO(text, newline="")):
        if not record:
            continue  # blank lines are skipped, as Go's csv reader does
        if len(record) < 3:
            raise ValueError(f"token file '{path}' must have at least 3 columns (token, user name, user uid), "
                             f"found {len(record)}")
        record_num += 1
        token, user, uid = record[0], record[1], record[2]
        if not token:
            log.warning("empty token has been found in token file '%s', record number '%d'", path, record_num)
            continue
        if token in tokens:
            log.warning("duplicate token has been found in token file '%s', record number '%d'", path, record_num)
        groups = record[3].split(",") if len(record) >= 4 else []
        tokens[token] = (user, uid, groups)
    return tokens
