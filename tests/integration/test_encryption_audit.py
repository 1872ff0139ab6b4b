"""Encryption at rest and the audit log on a real server driven by kubectl.

The raw SQLite file is read directly (table kv, see pyk8s/store/sqlite.py) to see what is really on disk.
"""

from __future__ import annotations

import base64
import json
import re
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from conftest import BARE, Cluster, eventually

pytestmark = pytest.mark.timeout(300)

KEY1 = base64.b64encode(bytes(range(32))).decode()
KEY2 = base64.b64encode(bytes(range(32, 64))).decode()
KEY3 = base64.b64encode(bytes(range(64, 96))).decode()

POLICY = """\
apiVersion: audit.k8s.io/v1
kind: Policy
rules:
  - level: None
    nonResourceURLs: ["/healthz*", "/readyz*", "/livez*"]
  - level: Metadata
    resources: [{group: "", resources: [secrets]}]
  - level: RequestResponse
    omitStages: [RequestReceived]
    resources: [{group: "", resources: [configmaps]}]
  - level: Metadata
    nonResourceURLs: ["/version"]
"""


def encryption_config(*keys: tuple[str, str]) -> str:
    key_lines = "".join(f"            - name: {name}\n              secret: {secret}\n" for name, secret in keys)
    return ("apiVersion: apiserver.config.k8s.io/v1\nkind: EncryptionConfiguration\nresources:\n"
            "  - resources: [secrets]\n    providers:\n      - aesgcm:\n          keys:\n"
            f"{key_lines}      - identity: {{}}\n")


@pytest.fixture(scope="module")
def encrypted_cluster(tmp_path_factory) -> Iterator[Cluster]:
    config_dir = tmp_path_factory.mktemp("config")
    (config_dir / "encryption.yaml").write_text(encryption_config(("key1", KEY1)))
    (config_dir / "policy.yaml").write_text(POLICY)
    c = Cluster(tmp_path_factory.mktemp("encrypted"), (
        *BARE, "--encryption-provider-config", str(config_dir / "encryption.yaml"),
        "--audit-policy-file", str(config_dir / "policy.yaml"),
        "--audit-log-path", str(config_dir / "audit" / "audit.log")))
    c.config_dir = config_dir  # type: ignore[attr-defined]
    c.start()
    yield c
    if c.process is not None:
        c.stop()


def raw_value(cluster: Cluster, key: str) -> bytes | None:
    with sqlite3.connect(f"file:{cluster.data_dir / 'db' / 'state.db'}?mode=ro", uri=True) as db:
        row = db.execute("SELECT value FROM kv WHERE key = ?", (key,)).fetchone()
    return None if row is None else bytes(row[0])


def audit_events(cluster: Cluster) -> list[dict]:
    path = cluster.config_dir / "audit" / "audit.log"  # type: ignore[attr-defined]
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines()]


def secret_value(cluster: Cluster, name: str) -> str:
    data = cluster.kubectl_json("get", "secret", name, "-n", "default")["data"]
    return base64.b64decode(data["password"]).decode()


def test_secrets_are_encrypted_on_disk_and_clear_through_the_api(encrypted_cluster: Cluster) -> None:
    c = encrypted_cluster
    c.kubectl("create", "secret", "generic", "db", "-n", "default", "--from-literal=password=hunter2-plain")
    c.kubectl("create", "configmap", "settings", "-n", "default", "--from-literal=mode=visible-plain")
    raw = raw_value(c, "/registry/core/secrets/default/db")
    assert raw is not None and raw.startswith(b"k8s:enc:aesgcm:v1:key1:")
    assert b"hunter2" not in raw and base64.b64encode(b"hunter2-plain") not in raw and b'"db"' not in raw
    assert b"visible-plain" in raw_value(c, "/registry/core/configmaps/default/settings")
    assert secret_value(c, "db") == "hunter2-plain"
    listed = c.kubectl_json("get", "secrets", "-n", "default")
    assert "db" in [item["metadata"]["name"] for item in listed["items"]]


def test_restart_keeps_reading_encrypted_secrets(encrypted_cluster: Cluster) -> None:
    c = encrypted_cluster
    c.kubectl("create", "secret", "generic", "survivor", "-n", "default", "--from-literal=password=still-here")
    c.restart()
    assert secret_value(c, "survivor") == "still-here"


def test_key_rotation_by_rewriting_every_secret(encrypted_cluster: Cluster) -> None:
    c = encrypted_cluster
    config = c.config_dir / "encryption.yaml"  # type: ignore[attr-defined]
    c.kubectl("create", "secret", "generic", "rotate-me", "-n", "default", "--from-literal=password=rotating")
    key = "/registry/core/secrets/default/rotate-me"
    assert raw_value(c, key).startswith(b"k8s:enc:aesgcm:v1:key1:")

    for new, old in ((("key2", KEY2), ("key1", KEY1)), (("key3", KEY3), ("key2", KEY2))):
        c.stop()
        config.write_text(encryption_config(new, old))
        c.start()
        # Still readable with the old key, still stored with it until rewritten.
        assert secret_value(c, "rotate-me") == "rotating"
        assert raw_value(c, key).startswith(f"k8s:enc:aesgcm:v1:{old[0]}:".encode())
        listing = c.kubectl("get", "secrets", "-A", "-o", "json").stdout
        # --validate=false: kubectl validates a List against /openapi/v2, which pyk8s does not serve yet.
        c.kubectl("replace", "--validate=false", "-f", "-", input=listing)
        # The second round replaces objects that did not change at all: only their stale encryption
        # makes the server write them.
        assert raw_value(c, key).startswith(f"k8s:enc:aesgcm:v1:{new[0]}:".encode())
        assert raw_value(c, "/registry/core/secrets/default/db").startswith(f"k8s:enc:aesgcm:v1:{new[0]}:".encode())
        assert secret_value(c, "rotate-me") == "rotating"


def test_a_config_without_the_key_that_wrote_the_data_refuses_to_start(encrypted_cluster: Cluster) -> None:
    c = encrypted_cluster
    config = c.config_dir / "encryption.yaml"  # type: ignore[attr-defined]
    working = config.read_text()
    c.stop()
    config.write_text(encryption_config(("key4", base64.b64encode(bytes(range(96, 128))).decode())))
    try:
        with pytest.raises(RuntimeError) as caught:
            c.start()
        assert "cannot read the stored data with the encryption configuration" in str(caught.value)
        assert 'unable to transform key "/registry/core/secrets/default/' in str(caught.value)
    finally:
        config.write_text(working)
        c.process = None
        c.start()
    assert secret_value(c, "db") == "hunter2-plain"


def test_a_bad_encryption_config_stops_the_server_with_a_clear_message(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("apiVersion: apiserver.config.k8s.io/v1\nkind: EncryptionConfiguration\nresources:\n"
                   "  - resources: [secrets]\n    providers:\n      - aesgcm:\n          keys:\n"
                   "            - name: k\n              secret: c2hvcnQ=\n")
    result = subprocess.run([sys.executable, "-m", "pyk8s.cli", "server", "--data-dir", str(tmp_path / "data"),
                             "--encryption-provider-config", str(bad)], capture_output=True, text=True, timeout=120)
    assert result.returncode == 2
    assert "--encryption-provider-config" in result.stderr
    assert "secret is not of the expected length, got 5, expected one of [16 24 32]" in result.stderr
    assert not (tmp_path / "data" / "db").exists()


def test_audit_log_records_kubectl_requests_at_the_configured_levels(encrypted_cluster: Cluster) -> None:
    c = encrypted_cluster
    c.kubectl("create", "secret", "generic", "audited", "-n", "default", "--from-literal=password=never-logged")
    c.kubectl("get", "secret", "audited", "-n", "default")
    c.kubectl("create", "configmap", "audited-cm", "-n", "default", "--from-literal=k=logged-value")

    def secret_events() -> list[dict]:
        return [e for e in audit_events(c) if e.get("objectRef", {}).get("name") == "audited"
                and e["objectRef"]["resource"] == "secrets"]

    events = eventually(lambda: len(secret_events()) >= 3 and secret_events(), timeout=60)
    creates = [e for e in events if e["verb"] == "create"]
    gets = [e for e in events if e["verb"] == "get"]
    # A create names its object in the body: the objectRef is completed from it, as upstream.
    assert [e["stage"] for e in creates] == ["ResponseComplete"]
    assert creates[0]["objectRef"] == {"resource": "secrets", "namespace": "default", "name": "audited",
                                       "apiVersion": "v1"}
    assert creates[0]["responseStatus"] == {"metadata": {}, "code": 201}
    assert "requestObject" not in creates[0] and "responseObject" not in creates[0]
    assert [e["stage"] for e in gets] == ["RequestReceived", "ResponseComplete"]
    for event in gets:
        assert event["level"] == "Metadata" and event["auditID"] == gets[0]["auditID"]
        assert event["user"]["username"] and event["userAgent"].startswith("kubectl")
        assert event["objectRef"] == {"resource": "secrets", "namespace": "default", "name": "audited",
                                      "apiVersion": "v1"}
        assert event["sourceIPs"] == ["127.0.0.1"]
    assert gets[1]["responseStatus"] == {"metadata": {}, "code": 200}
    assert "never-logged" not in (c.config_dir / "audit" / "audit.log").read_text()  # type: ignore[attr-defined]
    assert base64.b64encode(b"never-logged").decode() not in (
        c.config_dir / "audit" / "audit.log").read_text()  # type: ignore[attr-defined]

    def configmap_events() -> list[dict]:
        return [e for e in audit_events(c) if e.get("objectRef", {}).get("resource") == "configmaps"
                and e["verb"] == "create" and (e.get("responseObject") or {}).get("metadata", {}).get("name")
                == "audited-cm"]

    (cm_event,) = eventually(configmap_events, timeout=60)
    assert cm_event["level"] == "RequestResponse" and cm_event["stage"] == "ResponseComplete"
    assert cm_event["requestObject"]["data"] == {"k": "logged-value"}
    assert cm_event["responseObject"]["data"] == {"k": "logged-value"}
    assert cm_event["responseStatus"]["code"] == 201


def test_every_response_has_an_audit_id_that_names_its_events(encrypted_cluster: Cluster) -> None:
    c = encrypted_cluster
    result = c.kubectl("get", "--raw", "/version", "-v=8")
    match = re.search(r"Audit-Id: ([0-9a-f-]{36})", result.stderr)
    assert match, result.stderr[-2000:]
    audit_id = match.group(1)
    events = eventually(lambda: [e for e in audit_events(c) if e["auditID"] == audit_id], timeout=60)
    assert {e["requestURI"] for e in events} == {"/version"} and events[0]["verb"] == "get"
    missing = c.kubectl("get", "secret", "no-such-secret", "-n", "default", "-v=8", check=False)
    assert missing.returncode != 0 and "Audit-Id:" in missing.stderr
    not_found = eventually(lambda: [e for e in audit_events(c) if e.get("objectRef", {}).get("name")
                                    == "no-such-secret" and e["stage"] == "ResponseComplete"], timeout=60)
    assert not_found[0]["responseStatus"]["code"] == 404 and not_found[0]["responseStatus"]["reason"] == "NotFound"


def test_a_watch_logs_response_started_then_response_complete(encrypted_cluster: Cluster) -> None:
    c = encrypted_cluster
    c.kubectl("get", "--raw", "/api/v1/namespaces/default/secrets?watch=1&timeoutSeconds=1")

    def watch_events() -> list[dict]:
        return [e for e in audit_events(c) if e["verb"] == "watch" and e["objectRef"]["resource"] == "secrets"
                and "timeoutSeconds=1" in e["requestURI"]]

    events = eventually(lambda: len(watch_events()) >= 3 and watch_events(), timeout=60)
    assert [e["stage"] for e in events] == ["RequestReceived", "ResponseStarted", "ResponseComplete"]
    assert len({e["auditID"] for e in events}) == 1
    assert events[1]["responseStatus"]["code"] == 200 and events[2]["responseStatus"]["code"] == 200
