"""Audit: Policy parsing and validation, rule matching (upstream's checker), events, the log writer."""

from __future__ import annotations

import uuid
from pathlib import Path
from unittest import mock

import orjson
import pytest
from aiohttp import streams, web
from aiohttp.test_utils import make_mocked_request

from pyk8s.apiserver.audit import (
    AuditLog,
    Auditor,
    PolicyError,
    auditor_from_flags,
    load_policy,
    new_audit_id,
    parse_policy,
)
from pyk8s.apiserver.authn import UserInfo
from pyk8s.apiserver.negotiation import parse_bool, read_body
from pyk8s.apiserver.requestinfo import parse_request_info

ALICE = UserInfo("alice", groups=("dev", "system:authenticated"))
BOB = UserInfo("bob", groups=("ops", "system:authenticated"))


def policy(*rules: dict, **top: object):
    return parse_policy({"apiVersion": "audit.k8s.io/v1", "kind": "Policy", "rules": list(rules), **top})


def info(method: str, path: str, query: dict | None = None):
    return parse_request_info(method, path, query or {}, parse_bool)


@pytest.mark.parametrize("rule,user,method,path,matches", [
    ({}, ALICE, "GET", "/api/v1/pods", True),
    ({"users": ["alice"]}, ALICE, "GET", "/api/v1/pods", True),
    ({"users": ["alice"]}, BOB, "GET", "/api/v1/pods", False),
    ({"users": ["alice"]}, None, "GET", "/api/v1/pods", False),
    ({"userGroups": ["ops"]}, BOB, "GET", "/api/v1/pods", True),
    ({"userGroups": ["ops"]}, ALICE, "GET", "/api/v1/pods", False),
    ({"verbs": ["list"]}, ALICE, "GET", "/api/v1/pods", True),
    ({"verbs": ["get"]}, ALICE, "GET", "/api/v1/pods", False),
    ({"verbs": ["watch"]}, ALICE, "GET", "/api/v1/pods?watch=1", True),
    ({"verbs": ["create"]}, ALICE, "POST", "/api/v1/namespaces/a/pods", True),
    ({"resources": [{"group": "", "resources": ["secrets"]}]}, ALICE, "GET", "/api/v1/namespaces/a/secrets/s", True),
    ({"resources": [{"group": "", "resources": ["secrets"]}]}, ALICE, "GET", "/api/v1/namespaces/a/configmaps", False),
    ({"resources": [{"group": ""}]}, ALICE, "GET", "/api/v1/namespaces/a/configmaps", True),
    ({"resources": [{"group": ""}]}, ALICE, "GET", "/apis/apps/v1/deployments", False),
    ({"resources": [{"group": "apps", "resources": ["deployments"]}]}, ALICE, "GET", "/apis/apps/v1/deployments",
     True),
    ({"resources": [{"group": "", "resources": ["pods"]}]}, ALICE, "GET", "/api/v1/namespaces/a/pods/p/log", False),
    ({"resources": [{"group": "", "resources": ["pods/log"]}]}, ALICE, "GET", "/api/v1/namespaces/a/pods/p/log",
     True),
    ({"resources": [{"group": "", "resources": ["*/status"]}]}, ALICE, "PUT", "/api/v1/namespaces/a/pods/p/status",
     True),
    ({"resources": [{"group": "", "resources": ["*/status"]}]}, ALICE, "PUT", "/api/v1/namespaces/a/pods/p", False),
    ({"resources": [{"group": "", "resources": ["pods/*"]}]}, ALICE, "GET", "/api/v1/namespaces/a/pods/p/exec",
     True),
    ({"resources": [{"group": "", "resources": ["*"]}]}, ALICE, "GET", "/api/v1/namespaces/a/pods/p/log", True),
    ({"resources": [{"group": "", "resources": ["configmaps"], "resourceNames": ["c1"]}]}, ALICE, "GET",
     "/api/v1/namespaces/a/configmaps/c1", True),
    ({"resources": [{"group": "", "resources": ["configmaps"], "resourceNames": ["c1"]}]}, ALICE, "GET",
     "/api/v1/namespaces/a/configmaps/c2", False),
    ({"namespaces": ["kube-system"]}, ALICE, "GET", "/api/v1/namespaces/kube-system/pods", True),
    ({"namespaces": ["kube-system"]}, ALICE, "GET", "/api/v1/namespaces/default/pods", False),
    ({"namespaces": [""]}, ALICE, "GET", "/api/v1/nodes", True),
    ({"namespaces": ["kube-system"]}, ALICE, "GET", "/healthz", False),
    ({"nonResourceURLs": ["/healthz*"]}, ALICE, "GET", "/healthz/etcd", True),
    ({"nonResourceURLs": ["/version"]}, ALICE, "GET", "/version", True),
    ({"nonResourceURLs": ["/version"]}, ALICE, "GET", "/versions", False),
    ({"nonResourceURLs": ["*"]}, ALICE, "GET", "/api/v1/pods", False),
    ({"nonResourceURLs": ["*"]}, ALICE, "GET", "/openapi/v3", True),
])
def test_rule_matching(rule: dict, user: UserInfo | None, method: str, path: str, matches: bool) -> None:
    path, _, query = path.partition("?")
    request = info(method, path, dict(q.split("=") for q in query.split("&")) if query else None)
    decided = policy({"level": "Metadata", **rule}).decide(user, request)
    assert (decided.level == "Metadata") is matches


def test_the_first_matching_rule_decides_and_no_match_is_none() -> None:
    p = policy({"level": "None", "users": ["system:kube-proxy"]},
               {"level": "Metadata", "resources": [{"group": "", "resources": ["secrets"]}]},
               {"level": "RequestResponse", "namespaces": ["default"]})
    assert p.decide(UserInfo("system:kube-proxy"), info("GET", "/api/v1/namespaces/default/pods")).level == "None"
    assert p.decide(ALICE, info("GET", "/api/v1/namespaces/default/secrets")).level == "Metadata"
    assert p.decide(ALICE, info("GET", "/api/v1/namespaces/default/pods")).level == "RequestResponse"
    assert p.decide(ALICE, info("GET", "/api/v1/namespaces/other/pods")).level == "None"


def test_omit_stages_combine_and_omit_managed_fields_is_overridden_by_the_rule() -> None:
    p = policy({"level": "Request", "omitStages": ["ResponseStarted"], "omitManagedFields": False, "users": ["bob"]},
               {"level": "Request"}, omitStages=["RequestReceived"], omitManagedFields=True)
    bob = p.decide(BOB, info("GET", "/api/v1/pods"))
    assert bob.omit_stages == {"RequestReceived", "ResponseStarted"} and bob.omit_managed_fields is False
    alice = p.decide(ALICE, info("GET", "/api/v1/pods"))
    assert alice.omit_stages == {"RequestReceived"} and alice.omit_managed_fields is True


@pytest.mark.parametrize("doc,message", [
    ({"apiVersion": "audit.k8s.io/v1beta1", "kind": "Policy"}, "expected apiVersion audit.k8s.io/v1"),
    ({"rules": [{}]}, "rules[0].level: Required value"),
    ({"rules": [{"level": "Everything"}]}, "rules[0].level: Unsupported value: 'Everything'"),
    ({"omitStages": ["Done"]}, "omitStages: Unsupported value: 'Done'"),
    ({"rules": [{"level": "None", "omitStages": ["Nope"]}]}, "rules[0].omitStages: Unsupported value"),
    ({"rules": [{"level": "None", "nonResourceURLs": ["/x"], "namespaces": ["a"]}]},
     "rules cannot apply to both regular resources and non-resource URLs"),
    ({"rules": [{"level": "None", "nonResourceURLs": ["healthz"]}]}, "must begin with a '/' character"),
    ({"rules": [{"level": "None", "nonResourceURLs": ["/a*/b"]}]}, "'*' must be the final character of the rule"),
    ({"rules": [{"level": "None", "resources": [{"group": "", "resourceNames": ["a"]}]}]},
     "using resourceNames requires at least one resource"),
])
def test_invalid_policies_are_refused(doc: dict, message: str) -> None:
    with pytest.raises(PolicyError) as caught:
        parse_policy({"apiVersion": "audit.k8s.io/v1", "kind": "Policy", **doc})
    assert message in str(caught.value)


def test_policy_from_a_file(tmp_path: Path) -> None:
    path = tmp_path / "policy.yaml"
    path.write_text("apiVersion: audit.k8s.io/v1\nkind: Policy\nrules:\n- level: Metadata\n")
    assert load_policy(path).decide(ALICE, info("GET", "/version")).level == "Metadata"
    path.write_text("apiVersion: audit.k8s.io/v1\nkind: Policy\nrules:\n- level: Loud\n")
    with pytest.raises(PolicyError, match=f"invalid audit policy file {path}"):
        load_policy(path)


# --------------------------------------------------------------------------- events and the writer


def lines(path: Path) -> list[dict]:
    return [orjson.loads(line) for line in path.read_bytes().splitlines()]


async def run_request(auditor: Auditor, method: str, path: str, body: bytes, response: web.Response,
                      user: UserInfo = ALICE, headers: dict | None = None) -> str:
    payload = streams.StreamReader(protocol=mock.Mock(_reading_paused=False), limit=2**16)
    payload.feed_data(body)
    payload.feed_eof()
    request = make_mocked_request(method, path, headers={"User-Agent": "kubectl/v1.32.0", "Content-Type":
                                                         "application/json", "Content-Length": str(len(body)),
                                                         **(headers or {})}, payload=payload)
    audit = auditor.begin(request, info(method, path.partition("?")[0]))
    audit.authenticated(user)
    if body:
        await read_body(request)  # what the handler does
    await auditor.on_response_prepare(request, response)
    audit.complete(response)
    return response.headers["Audit-Id"]


async def test_metadata_events_for_both_stages_without_bodies(tmp_path: Path) -> None:
    log_path = tmp_path / "audit" / "audit.log"
    auditor = Auditor(policy({"level": "Metadata"}), AuditLog(str(log_path)))
    await auditor.start()
    body = orjson.dumps({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s"}, "data": {"k": "djE="}})
    response = web.json_response({"kind": "Secret", "metadata": {"name": "s"}}, status=201)
    audit_id = await run_request(auditor, "POST", "/api/v1/namespaces/default/secrets?fieldManager=kubectl-create",
                                 body, response)
    await auditor.stop()
    received, complete = lines(log_path)
    assert received["stage"] == "RequestReceived" and complete["stage"] == "ResponseComplete"
    for event in (received, complete):
        assert event["apiVersion"] == "audit.k8s.io/v1" and event["kind"] == "Event"
        assert event["auditID"] == audit_id and event["level"] == "Metadata" and event["verb"] == "create"
        assert event["requestURI"] == "/api/v1/namespaces/default/secrets?fieldManager=kubectl-create"
        assert event["user"] == {"username": "alice", "groups": ["dev", "system:authenticated"]}
        assert event["userAgent"] == "kubectl/v1.32.0"
        assert event["objectRef"]["resource"] == "secrets" and event["objectRef"]["namespace"] == "default"
        assert "requestObject" not in event and "responseObject" not in event
        assert event["requestReceivedTimestamp"] == received["requestReceivedTimestamp"]
    assert "responseStatus" not in received
    # Only the decoded body names a created object: the RequestReceived stage comes before decoding.
    assert "name" not in received["objectRef"]
    assert complete["objectRef"] == {"resource": "secrets", "namespace": "default", "name": "s", "apiVersion": "v1"}
    assert complete["responseStatus"] == {"metadata": {}, "code": 201}
    assert complete["stageTimestamp"] >= complete["requestReceivedTimestamp"]


async def test_request_and_request_response_levels_carry_the_bodies(tmp_path: Path) -> None:
    log_path = tmp_path / "audit.log"
    auditor = Auditor(policy({"level": "Request", "users": ["bob"]}, {"level": "RequestResponse"},
                             omitStages=["RequestReceived"], omitManagedFields=True), AuditLog(str(log_path)))
    await auditor.start()
    body = orjson.dumps({"kind": "ConfigMap", "metadata": {"name": "c", "managedFields": [{}]}, "data": {"a": "b"}})
    await run_request(auditor, "POST", "/api/v1/namespaces/default/configmaps", body,
                      web.json_response({"kind": "ConfigMap", "metadata": {"name": "c", "managedFields": [{}]}}),
                      user=BOB)
    await run_request(auditor, "POST", "/api/v1/namespaces/default/configmaps", body,
                      web.json_response({"kind": "ConfigMap", "metadata": {"name": "c"}}))
    await auditor.stop()
    bob, alice = lines(log_path)
    assert bob["level"] == "Request" and bob["requestObject"] == {"kind": "ConfigMap", "metadata": {"name": "c"},
                                                                  "data": {"a": "b"}}
    assert "responseObject" not in bob
    assert alice["level"] == "RequestResponse" and alice["responseObject"]["metadata"] == {"name": "c"}


async def test_failures_record_the_status_and_a_client_audit_id_is_kept(tmp_path: Path) -> None:
    log_path = tmp_path / "audit.log"
    auditor = Auditor(policy({"level": "Metadata", "omitStages": ["RequestReceived"]}), AuditLog(str(log_path)))
    await auditor.start()
    status = {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure", "reason": "NotFound",
              "message": 'secrets "s" not found', "details": {"name": "s", "kind": "secrets"}, "code": 404}
    audit_id = await run_request(auditor, "GET", "/api/v1/namespaces/default/secrets/s", b"",
                                 web.json_response(status, status=404), headers={"Audit-ID": "client-chosen"})
    await auditor.stop()
    assert audit_id == "client-chosen"
    (event,) = lines(log_path)
    assert event["auditID"] == "client-chosen" and event["verb"] == "get"
    assert event["objectRef"]["name"] == "s"
    assert event["responseStatus"] == {"metadata": {}, "status": "Failure", "reason": "NotFound",
                                       "message": 'secrets "s" not found',
                                       "details": {"name": "s", "kind": "secrets"}, "code": 404}


async def test_without_a_policy_requests_still_get_an_audit_id_and_nothing_is_written(tmp_path: Path) -> None:
    auditor = auditor_from_flags(None, str(tmp_path / "audit.log"))
    await auditor.start()
    audit_id = await run_request(auditor, "GET", "/api/v1/pods", b"", web.json_response({}))
    await auditor.stop()
    assert uuid.UUID(audit_id).version == 4 and str(uuid.UUID(audit_id)) == audit_id
    assert not (tmp_path / "audit.log").exists()
    assert len({new_audit_id() for _ in range(1000)}) == 1000


def test_the_log_rotates_and_keeps_max_backups(tmp_path: Path) -> None:
    backend = AuditLog(str(tmp_path / "audit.log"), max_size_mb=1, max_backups=2)
    chunk = b"x" * (400 * 1024) + b"\n"
    for _ in range(12):
        backend.write(chunk)
    backend.close()
    backups = sorted(p.name for p in tmp_path.glob("audit-*.log"))
    assert len(backups) == 2
    assert (tmp_path / "audit.log").stat().st_size <= 1024 * 1024
    for name in backups:
        assert (tmp_path / name).stat().st_size <= 1024 * 1024


async def test_a_full_queue_drops_events_instead_of_blocking(tmp_path: Path, monkeypatch) -> None:
    import pyk8s.apiserver.audit as audit_module

    monkeypatch.setattr(audit_module, "_QUEUE_SIZE", 3)
    auditor = Auditor(policy({"level": "Metadata"}), AuditLog(str(tmp_path / "audit.log")))
    await auditor.start()
    for n in range(10):  # no await in between: the writer task cannot drain the queue
        auditor.submit({"n": n})
    assert auditor.dropped == 7
    await auditor.stop()
    assert [e["n"] for e in lines(tmp_path / "audit.log")] == [0, 1, 2]


async def test_watches_log_response_started_and_internal_errors_log_panic(tmp_path: Path) -> None:
    log_path = tmp_path / "audit.log"
    auditor = Auditor(policy({"level": "Metadata", "omitStages": ["RequestReceived"]}), AuditLog(str(log_path)))
    await auditor.start()
    request = make_mocked_request("GET", "/api/v1/pods?watch=1")
    watch = auditor.begin(request, info("GET", "/api/v1/pods", {"watch": "1"}))
    watch.authenticated(ALICE)
    stream = web.StreamResponse()
    await auditor.on_response_prepare(request, stream)
    watch.complete(stream)
    failing = make_mocked_request("GET", "/api/v1/namespaces/a/pods/p")
    panic = auditor.begin(failing, info("GET", "/api/v1/namespaces/a/pods/p"))
    panic.authenticated(ALICE)
    status = {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure", "reason": "InternalError",
              "message": "boom", "code": 500}
    panic.complete(web.json_response(status, status=500), panicked=True)
    panic.complete(None)  # the dispatcher's finally: a second completion writes nothing
    await auditor.stop()
    started, complete, panicked = lines(log_path)
    assert (started["stage"], started["verb"], started["responseStatus"]) == ("ResponseStarted", "watch",
                                                                               {"metadata": {}, "code": 200})
    assert complete["stage"] == "ResponseComplete" and complete["auditID"] == started["auditID"]
    assert panicked["stage"] == "Panic" and panicked["responseStatus"]["reason"] == "InternalError"
