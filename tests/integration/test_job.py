"""The Job and TTL-after-finished controllers in a whole `pyk8s server --simulated-nodes 3` (scheduler,
controller-manager and simulated nodes as the server's children), driven through kubectl and the
kubernetes Python client. Simulated containers exit after `sim.pyk8s.io/run-seconds` with
`sim.pyk8s.io/exit-code`, which is how these Jobs succeed and fail.
"""

from __future__ import annotations

import json
import os
import signal
from collections.abc import Iterator

import psutil
import pytest

from conftest import Cluster, eventually, validate_tree

RUN = "sim.pyk8s.io/run-seconds"
EXIT = "sim.pyk8s.io/exit-code"


@pytest.fixture(scope="module")
def sim_cluster(tmp_path_factory) -> Iterator[Cluster]:
    c = Cluster(tmp_path_factory.mktemp("jobs"), ("--simulated-nodes", "3"))
    c.start()
    eventually(lambda: len(c.kubectl_json("get", "nodes")["items"]) == 3, timeout=60)
    c.kubectl("wait", "--for=condition=Ready", "node", "--all", "--timeout=60s", timeout=90)
    yield c
    if c.process is not None:
        c.stop()


@pytest.fixture
def ns(sim_cluster: Cluster, request) -> str:
    name = "job-" + "".join(ch if ch.isalnum() else "-" for ch in request.node.name.lower())[5:40].strip("-")
    sim_cluster.kubectl("apply", "-f", "-", input=json.dumps(
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}}))
    return name


def job_manifest(name: str, ns: str, *, run: float = 1, exit_code: int = 0, restart: str = "Never",
                 **spec: object) -> dict:
    return {"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": name, "namespace": ns},
            "spec": {**spec, "template": {
                "metadata": {"annotations": {RUN: str(run), EXIT: str(exit_code)}},
                "spec": {"restartPolicy": restart, "containers": [{"name": "main", "image": "busybox"}]}}}}


def apply(cluster: Cluster, obj: dict) -> None:
    cluster.kubectl("apply", "-f", "-", input=json.dumps(obj))


def get_job(cluster: Cluster, ns: str, name: str) -> dict:
    return cluster.kubectl_json("get", "job", name, "-n", ns)


def condition(job: dict, type_: str) -> dict | None:
    return next((c for c in (job.get("status") or {}).get("conditions") or () if c["type"] == type_
                 and c["status"] == "True"), None)


def job_pods(cluster: Cluster, ns: str, name: str) -> list[dict]:
    return cluster.kubectl_json("get", "pods", "-n", ns, "-l", f"batch.kubernetes.io/job-name={name}")["items"]


def events(cluster: Cluster, ns: str, name: str) -> list[str]:
    items = cluster.kubectl_json("get", "events", "-n", ns)["items"]
    return [e["reason"] for e in items if e["involvedObject"].get("name") == name]


def wait_finished(cluster: Cluster, ns: str, name: str, type_: str, timeout: float = 90) -> dict:
    return eventually(lambda: (j := get_job(cluster, ns, name)) and condition(j, type_) and j, timeout=timeout)


def test_job_completes_and_kubectl_waits_and_describes(sim_cluster: Cluster, ns: str):
    apply(sim_cluster, job_manifest("pi", ns, completions=3, parallelism=2))
    sim_cluster.kubectl("wait", "--for=condition=complete", "job/pi", "-n", ns, "--timeout=90s", timeout=120)
    job = get_job(sim_cluster, ns, "pi")
    status = job["status"]
    assert status["succeeded"] == 3 and "failed" not in status and status.get("active") is None
    assert status["ready"] == 0 and status["terminating"] == 0 and status["uncountedTerminatedPods"] == {}
    assert status["startTime"] and status["completionTime"]
    assert condition(job, "SuccessCriteriaMet")["reason"] == "CompletionsReached"
    complete = condition(job, "Complete")
    assert (complete["reason"], complete["message"]) == ("CompletionsReached",
                                                           "Reached expected number of succeeded pods")
    pods = job_pods(sim_cluster, ns, "pi")
    assert len(pods) == 3 and all(p["status"]["phase"] == "Succeeded" for p in pods)
    assert all("batch.kubernetes.io/job-tracking" not in (p["metadata"].get("finalizers") or []) for p in pods)
    uid = job["metadata"]["uid"]
    for p in pods:
        labels = p["metadata"]["labels"]
        assert labels["batch.kubernetes.io/controller-uid"] == uid and labels["controller-uid"] == uid
        assert labels["job-name"] == "pi"
        ref = p["metadata"]["ownerReferences"][0]
        assert (ref["kind"], ref["uid"], ref["controller"]) == ("Job", uid, True)
    reasons = eventually(lambda: (r := events(sim_cluster, ns, "pi")) and "Completed" in r and r, timeout=30)
    assert reasons.count("SuccessfulCreate") >= 1
    described = sim_cluster.kubectl("describe", "job", "pi", "-n", ns).stdout
    assert "Pods Statuses:    0 Active (0 Ready) / 3 Succeeded / 0 Failed" in described, described
    assert "Completed" in described
    table = sim_cluster.kubectl("get", "job", "pi", "-n", ns).stdout
    assert "Complete" in table and "3/3" in table, table


def test_indexed_job(sim_cluster: Cluster, ns: str):
    from kubernetes import client, config

    configuration = client.Configuration()
    config.load_kube_config(config_file=str(sim_cluster.kubeconfig), client_configuration=configuration)
    with client.ApiClient(configuration) as api:
        batch = client.BatchV1Api(api)
        manifest = job_manifest("idx", ns, completions=4, parallelism=2, completionMode="Indexed")
        manifest["spec"]["template"]["spec"]["subdomain"] = "workers"
        batch.create_namespaced_job(ns, manifest)
        job = wait_finished(sim_cluster, ns, "idx", "Complete")
        assert job["status"]["completedIndexes"] == "0-3" and job["status"]["succeeded"] == 4
        typed = batch.read_namespaced_job_status("idx", ns)
        assert typed.status.completed_indexes == "0-3" and typed.status.succeeded == 4
    pods = job_pods(sim_cluster, ns, "idx")
    indexes = sorted(int(p["metadata"]["annotations"]["batch.kubernetes.io/job-completion-index"]) for p in pods)
    assert indexes == [0, 1, 2, 3]
    for p in pods:
        index = p["metadata"]["annotations"]["batch.kubernetes.io/job-completion-index"]
        assert p["metadata"]["labels"]["batch.kubernetes.io/job-completion-index"] == index
        assert p["metadata"]["name"].startswith(f"idx-{index}-")
        assert p["spec"]["hostname"] == f"idx-{index}" and p["spec"]["subdomain"] == "workers"
        env = p["spec"]["containers"][0]["env"]
        assert {"name": "JOB_COMPLETION_INDEX", "valueFrom": {"fieldRef": {
            "apiVersion": "v1", "fieldPath": "metadata.annotations['batch.kubernetes.io/job-completion-index']"}}} \
            in env


def test_backoff_limit_exceeded(sim_cluster: Cluster, ns: str):
    apply(sim_cluster, job_manifest("fails", ns, exit_code=3, backoffLimit=1))
    job = wait_finished(sim_cluster, ns, "fails", "Failed", timeout=120)
    failed = condition(job, "Failed")
    assert (failed["reason"], failed["message"]) == ("BackoffLimitExceeded",
                                                       "Job has reached the specified backoff limit")
    assert condition(job, "FailureTarget")["reason"] == "BackoffLimitExceeded"
    assert job["status"]["failed"] == 2 and "succeeded" not in job["status"]
    assert "completionTime" not in job["status"]
    pods = job_pods(sim_cluster, ns, "fails")
    assert len(pods) == 2 and all(p["status"]["phase"] == "Failed" for p in pods)
    eventually(lambda: "BackoffLimitExceeded" in events(sim_cluster, ns, "fails"), timeout=30)


def test_pod_failure_policy_fail_job(sim_cluster: Cluster, ns: str):
    apply(sim_cluster, job_manifest("pfp", ns, exit_code=42, backoffLimit=6, podFailurePolicy={"rules": [
        {"action": "Ignore", "onPodConditions": [{"type": "DisruptionTarget"}]},
        {"action": "FailJob", "onExitCodes": {"containerName": "main", "operator": "In", "values": [42]}}]}))
    job = wait_finished(sim_cluster, ns, "pfp", "Failed")
    failed = condition(job, "Failed")
    pod = job_pods(sim_cluster, ns, "pfp")[0]
    assert failed["reason"] == "PodFailurePolicy"
    assert failed["message"] == (f"Container main for pod {ns}/{pod['metadata']['name']} failed with exit code 42 "
                                 f"matching FailJob rule at index 1")
    assert job["status"]["failed"] == 1 and len(job_pods(sim_cluster, ns, "pfp")) == 1


def test_active_deadline_exceeded(sim_cluster: Cluster, ns: str):
    apply(sim_cluster, job_manifest("slow", ns, run=600, parallelism=2, completions=2, activeDeadlineSeconds=3))
    job = wait_finished(sim_cluster, ns, "slow", "Failed")
    failed = condition(job, "Failed")
    assert (failed["reason"], failed["message"]) == ("DeadlineExceeded",
                                                       "Job was active longer than specified deadline")
    assert job["status"].get("active") is None and job["status"]["terminating"] == 0
    # The running pods were deleted and counted as failed.
    assert job["status"]["failed"] == 2
    eventually(lambda: not job_pods(sim_cluster, ns, "slow"), timeout=60)
    eventually(lambda: "DeadlineExceeded" in events(sim_cluster, ns, "slow"), timeout=30)


def test_suspend_and_resume(sim_cluster: Cluster, ns: str):
    apply(sim_cluster, job_manifest("sus", ns, run=2, suspend=True))
    job = eventually(lambda: (j := get_job(sim_cluster, ns, "sus")) and condition(j, "Suspended") and j)
    suspended = condition(job, "Suspended")
    assert (suspended["reason"], suspended["message"]) == ("JobSuspended", "Job suspended")
    assert "startTime" not in job["status"] and not job_pods(sim_cluster, ns, "sus")
    sim_cluster.kubectl("patch", "job", "sus", "-n", ns, "--type=merge", "-p", '{"spec":{"suspend":false}}')
    job = wait_finished(sim_cluster, ns, "sus", "Complete")
    resumed = next(c for c in job["status"]["conditions"] if c["type"] == "Suspended")
    assert (resumed["status"], resumed["reason"], resumed["message"]) == ("False", "JobResumed", "Job resumed")
    assert job["status"]["startTime"] and job["status"]["succeeded"] == 1
    reasons = eventually(lambda: (r := events(sim_cluster, ns, "sus")) and "Completed" in r and r, timeout=30)
    assert "Suspended" in reasons and "Resumed" in reasons


def test_success_policy(sim_cluster: Cluster, ns: str):
    apply(sim_cluster, job_manifest("lead", ns, completions=3, parallelism=1, completionMode="Indexed",
                                    successPolicy={"rules": [{"succeededIndexes": "0"}]}))
    job = wait_finished(sim_cluster, ns, "lead", "Complete")
    complete = condition(job, "Complete")
    assert (complete["reason"], complete["message"]) == ("SuccessPolicy", "Matched rules at index 0")
    assert condition(job, "SuccessCriteriaMet")["reason"] == "SuccessPolicy"
    assert job["status"]["completedIndexes"].startswith("0")


def test_backoff_limit_per_index(sim_cluster: Cluster, ns: str):
    apply(sim_cluster, job_manifest("per", ns, exit_code=1, completions=2, parallelism=2, completionMode="Indexed",
                                    backoffLimitPerIndex=0, maxFailedIndexes=1))
    job = wait_finished(sim_cluster, ns, "per", "Failed")
    failed = condition(job, "Failed")
    # Both indexes fail on their first try; the second failed index is one more than maxFailedIndexes allows,
    # unless both were seen in one sync, in which case the same condition results.
    assert failed["reason"] == "MaxFailedIndexesExceeded"
    assert failed["message"] == "Job has exceeded the specified maximal number of failed indexes"
    assert job["status"]["failedIndexes"] == "0,1" and job["status"]["failed"] == 2
    pods = job_pods(sim_cluster, ns, "per")
    assert all(p["metadata"]["annotations"]["batch.kubernetes.io/job-index-failure-count"] == "0" for p in pods)


def test_ttl_after_finished_deletes_the_job_and_its_pods(sim_cluster: Cluster, ns: str):
    apply(sim_cluster, job_manifest("short", ns, ttlSecondsAfterFinished=1))
    eventually(lambda: sim_cluster.kubectl("get", "job", "short", "-n", ns, check=False).returncode != 0,
               timeout=90)
    eventually(lambda: not job_pods(sim_cluster, ns, "short"), timeout=60)


def test_controller_manager_restart_creates_no_duplicate_pods(sim_cluster: Cluster, ns: str):
    apply(sim_cluster, job_manifest("steady", ns, run=8, completions=4, parallelism=4))
    eventually(lambda: len(job_pods(sim_cluster, ns, "steady")) == 4, timeout=60)
    children = psutil.Process(sim_cluster.process.pid).children()
    managers = [c for c in children if "controller-manager" in c.cmdline()]
    assert len(managers) == 1, [c.cmdline() for c in children]
    os.kill(managers[0].pid, signal.SIGKILL)
    job = wait_finished(sim_cluster, ns, "steady", "Complete", timeout=120)
    assert job["status"]["succeeded"] == 4
    assert len(job_pods(sim_cluster, ns, "steady")) == 4


def test_lost_node_pods_are_replaced_and_counted_failed(sim_cluster: Cluster, ns: str):
    apply(sim_cluster, job_manifest("lost", ns, run=10, completions=3, parallelism=3, backoffLimit=6))
    pods = eventually(lambda: (ps := job_pods(sim_cluster, ns, "lost")) and len(ps) == 3
                      and all(p["spec"].get("nodeName") for p in ps) and ps, timeout=60)
    node = pods[0]["spec"]["nodeName"]
    victims = {p["metadata"]["uid"] for p in pods if p["spec"]["nodeName"] == node}
    # The node disappears: the pod garbage collector deletes its pods, which the Job counts as failed.
    sim_cluster.kubectl("delete", "node", node, "--wait=false")
    job = wait_finished(sim_cluster, ns, "lost", "Complete", timeout=150)
    assert job["status"]["succeeded"] == 3
    assert job["status"]["failed"] == len(victims)
    remaining = {p["metadata"]["uid"] for p in job_pods(sim_cluster, ns, "lost")}
    assert not remaining & victims


def test_create_job_from_cronjob(sim_cluster: Cluster, ns: str):
    cronjob = {"apiVersion": "batch/v1", "kind": "CronJob", "metadata": {"name": "nightly", "namespace": ns},
               "spec": {"schedule": "0 3 * * *", "jobTemplate": {"spec": job_manifest("x", ns)["spec"]}}}
    apply(sim_cluster, cronjob)
    sim_cluster.kubectl("create", "job", "manual", "--from=cronjob/nightly", "-n", ns)
    job = wait_finished(sim_cluster, ns, "manual", "Complete")
    validate_tree(job)
    assert job["metadata"]["annotations"]["cronjob.kubernetes.io/instantiate"] == "manual"
    assert job["metadata"]["ownerReferences"][0]["kind"] == "CronJob"


def test_manual_selector_job_adopts_a_matching_orphan(sim_cluster: Cluster, ns: str):
    sim_cluster.kubectl("apply", "-f", "-", input=json.dumps({
        "apiVersion": "v1", "kind": "Pod", "metadata": {"name": "early", "namespace": ns, "labels": {"app": "adopt"},
                                                        "annotations": {RUN: "3"}},
        "spec": {"restartPolicy": "Never", "containers": [{"name": "main", "image": "busybox"}]}}))
    manifest = job_manifest("adopter", ns, completions=1, manualSelector=True,
                            selector={"matchLabels": {"app": "adopt"}})
    manifest["spec"]["template"]["metadata"]["labels"] = {"app": "adopt"}
    apply(sim_cluster, manifest)
    job = wait_finished(sim_cluster, ns, "adopter", "Complete")
    assert job["status"]["succeeded"] == 1
    pods = sim_cluster.kubectl_json("get", "pods", "-n", ns, "-l", "app=adopt")["items"]
    assert [p["metadata"]["name"] for p in pods] == ["early"]
    assert pods[0]["metadata"]["ownerReferences"][0]["uid"] == job["metadata"]["uid"]


def test_node_that_stops_heartbeating_has_its_job_pods_evicted_replaced_and_counted(sim_cluster: Cluster, ns: str):
    job = job_manifest("beat", ns, run=600, completions=3, parallelism=3)
    # Evicted as soon as the node is unreachable (admission would otherwise give the pods 300 s).
    job["spec"]["template"]["spec"]["tolerations"] = [
        {"key": "node.kubernetes.io/unreachable", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 0}]
    apply(sim_cluster, job)
    pods = eventually(lambda: (ps := job_pods(sim_cluster, ns, "beat")) and len(ps) == 3
                      and all(p["status"].get("phase") == "Running" for p in ps) and ps, timeout=60)
    node = pods[0]["spec"]["nodeName"]
    victims = {p["metadata"]["uid"] for p in pods if p["spec"]["nodeName"] == node}
    sim_cluster.kubectl("annotate", "node", node, "sim.pyk8s.io/heartbeat=stopped")
    try:
        # The node lifecycle controller marks the node unreachable (40 s grace) and evicts its pods; the Job
        # counts each as failed at once and replaces it on a live node.
        def replaced():
            job = get_job(sim_cluster, ns, "beat")
            current = job_pods(sim_cluster, ns, "beat")
            fresh = [p for p in current if p["metadata"]["uid"] not in victims and p["spec"].get("nodeName")
                     and p["spec"]["nodeName"] != node and not p["metadata"].get("deletionTimestamp")]
            status = job["status"]
            # The evicted pods wait for their (dead) kubelet: they are terminating, not yet gone.
            return (status.get("failed") == len(victims) and status.get("active") == 3
                    and status.get("terminating") == len(victims) and len(fresh) == 3)
        eventually(replaced, timeout=150, interval=1)
    finally:
        sim_cluster.kubectl("annotate", "node", node, "sim.pyk8s.io/heartbeat-")
    # Back alive, the node's kubelet finishes the deletions.
    eventually(lambda: get_job(sim_cluster, ns, "beat")["status"]["terminating"] == 0, timeout=90, interval=1)
    sim_cluster.kubectl("delete", "job", "beat", "-n", ns, "--wait=false")
