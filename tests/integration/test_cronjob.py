"""The CronJob controller in a whole `pyk8s server --simulated-nodes 1`: an every-minute CronJob made with
the kubernetes Python client starts a Job at the next minute (one wait of at most ~70 s), which runs to
completion on a simulated node; the CronJob's status and events follow, as seen through kubectl.
Schedule arithmetic, missed times and concurrency policies are covered by the unit tests with a fake clock.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import datetime

import pytest

from conftest import Cluster, eventually, validate_tree


@pytest.fixture(scope="module")
def sim_cluster(tmp_path_factory) -> Iterator[Cluster]:
    c = Cluster(tmp_path_factory.mktemp("cronjobs"), ("--simulated-nodes", "1"))
    c.start()
    eventually(lambda: len(c.kubectl_json("get", "nodes")["items"]) == 1, timeout=60)
    yield c
    if c.process is not None:
        c.stop()


def test_every_minute_cronjob_runs_a_job(sim_cluster: Cluster):
    from kubernetes import client, config

    ns = "cron-minute"
    sim_cluster.kubectl("apply", "-f", "-", input=json.dumps(
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}}))
    configuration = client.Configuration()
    config.load_kube_config(config_file=str(sim_cluster.kubeconfig), client_configuration=configuration)
    with client.ApiClient(configuration) as api:
        batch = client.BatchV1Api(api)
        batch.create_namespaced_cron_job(ns, {
            "apiVersion": "batch/v1", "kind": "CronJob", "metadata": {"name": "tick"},
            "spec": {"schedule": "* * * * *", "concurrencyPolicy": "Forbid", "timeZone": "Europe/Berlin",
                     "jobTemplate": {"metadata": {"labels": {"team": "a"}}, "spec": {"template": {
                         "metadata": {"annotations": {"sim.pyk8s.io/run-seconds": "1"}},
                         "spec": {"restartPolicy": "Never", "containers": [{"name": "c", "image": "busybox"}]}}}}}})

        def first_job():
            items = sim_cluster.kubectl_json("get", "jobs", "-n", ns)["items"]
            return items[0] if items else None

        job = eventually(first_job, timeout=75, interval=1)
        name = job["metadata"]["name"]
        scheduled = job["metadata"]["annotations"]["batch.kubernetes.io/cronjob-scheduled-timestamp"]
        scheduled_at = datetime.fromisoformat(scheduled)
        assert scheduled_at.utcoffset() is not None and scheduled_at.second == 0
        assert scheduled_at.tzname() in ("CET", "CEST") or scheduled_at.utcoffset().total_seconds() in (3600, 7200)
        assert name == f"tick-{int(scheduled_at.timestamp()) // 60}"
        assert job["metadata"]["labels"]["team"] == "a"
        ref = job["metadata"]["ownerReferences"][0]
        assert (ref["kind"], ref["name"], ref["controller"]) == ("CronJob", "tick", True)

        def completed():
            cj = sim_cluster.kubectl_json("get", "cronjob", "tick", "-n", ns)
            return cj if cj["status"].get("lastSuccessfulTime") else None

        cronjob = eventually(completed, timeout=60)
        assert datetime.fromisoformat(cronjob["status"]["lastScheduleTime"].replace("Z", "+00:00")) == scheduled_at
        typed = batch.read_namespaced_cron_job("tick", ns)
        assert typed.status.last_schedule_time == scheduled_at
    validate_tree(cronjob)
    reasons = eventually(lambda: (r := [e["reason"] for e in sim_cluster.kubectl_json("get", "events", "-n", ns)[
        "items"] if e["involvedObject"]["kind"] == "CronJob"]) and "SawCompletedJob" in r and r, timeout=30)
    assert "SuccessfulCreate" in reasons
    table = sim_cluster.kubectl("get", "cronjob", "tick", "-n", ns).stdout
    assert "* * * * *" in table and "Europe/Berlin" in table, table
    described = sim_cluster.kubectl("describe", "cronjob", "tick", "-n", ns).stdout
    assert "Last Schedule Time:" in described and "SawCompletedJob" in described, described
