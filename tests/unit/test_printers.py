"""Server-side Table printers: column definitions and exact cells as upstream v1.32 prints them."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from pyk8s.api import printers

NOW = datetime(2024, 1, 1, 12, 0, 0, tzinfo=UTC)

PRINTER_NAMES = [
    "pod", "service", "endpoints", "config_map", "secret", "namespace", "node", "event", "service_account",
    "persistent_volume", "persistent_volume_claim", "resource_quota", "limit_range", "replication_controller",
    "pod_template", "deployment", "replica_set", "stateful_set", "daemon_set", "controller_revision", "job",
    "cron_job", "ingress", "ingress_class", "network_policy", "storage_class", "role", "cluster_role",
    "role_binding", "cluster_role_binding", "horizontal_pod_autoscaler", "pod_disruption_budget",
    "endpoint_slice", "lease", "priority_class",
]


def ago(seconds: float) -> str:
    return (NOW - timedelta(seconds=seconds)).strftime("%Y-%m-%dT%H:%M:%SZ")


def meta(name: str = "x", created: float = 300, **extra: object) -> dict:
    return {"name": name, "namespace": "default", "creationTimestamp": ago(created), **extra}


def cells(printer_name: str, obj: dict) -> list:
    return getattr(printers, printer_name).cells(obj, NOW)


# ---------------------------------------------------------------------------------------------
# Durations


@pytest.mark.parametrize(
    ("seconds", "expected"),
    [
        (-3, "<invalid>"),
        (-2, "<invalid>"),
        (-1.5, "0s"),
        (-1, "0s"),
        (0, "0s"),
        (0.4, "0s"),
        (1.9, "1s"),
        (59, "59s"),
        (119, "119s"),
        (120, "2m"),
        (121, "2m1s"),
        (599, "9m59s"),
        (600, "10m"),
        (659, "10m"),
        (3 * 3600 - 1, "179m"),
        (3 * 3600, "3h"),
        (3 * 3600 + 60, "3h1m"),
        (8 * 3600 - 1, "7h59m"),
        (8 * 3600, "8h"),
        (48 * 3600 - 1, "47h"),
        (48 * 3600, "2d"),
        (49 * 3600, "2d1h"),
        (8 * 86400 - 1, "7d23h"),
        (8 * 86400, "8d"),
        (730 * 86400 - 1, "729d"),
        (730 * 86400, "2y"),
        (731 * 86400, "2y1d"),
        (8 * 365 * 86400 - 1, "7y364d"),
        (8 * 365 * 86400, "8y"),
        (3655 * 86400, "10y"),
    ],
)
def test_human_duration(seconds: float, expected: str) -> None:
    assert printers.human_duration(seconds) == expected


@pytest.mark.parametrize(
    ("timestamp", "expected"),
    [
        (None, "<unknown>"),
        ("", "<unknown>"),
        (ago(90), "90s"),
        (ago(5 * 3600), "5h"),
        ((NOW - timedelta(minutes=3)).isoformat(), "3m"),
        ("2024-01-01T11:59:00.123456Z", "59s"),  # 59.88s truncates
        (ago(-30), "<invalid>"),
    ],
)
def test_age(timestamp: str | None, expected: str) -> None:
    assert printers.age(timestamp, NOW) == expected


# ---------------------------------------------------------------------------------------------
# Every printer: shape


@pytest.mark.parametrize("name", PRINTER_NAMES)
def test_minimal_object_has_one_cell_per_column(name: str) -> None:
    printer = getattr(printers, name)
    assert len(printer.cells({"metadata": {"name": "x"}}, NOW)) == len(printer.columns)
    assert len(printer.cells({}, NOW)) == len(printer.columns)


@pytest.mark.parametrize("name", PRINTER_NAMES)
def test_column_definitions_are_complete(name: str) -> None:
    for column in getattr(printers, name).columns:
        assert set(column) == {"name", "type", "format", "description", "priority"}
        assert column["type"] in ("string", "integer", "boolean", "date")
        assert column["priority"] in (0, 1)
        assert column["description"]


def test_every_registered_kind_has_a_printer() -> None:
    # The registry imports modules other work provides; skip until they exist.
    kinds = pytest.importorskip("pyk8s.api.kinds", exc_type=ImportError)
    for kind in kinds.KINDS:
        if kind.create_only:  # never listed, so never printed as a table
            continue
        assert isinstance(getattr(printers, kind.name), printers.Printer), kind.name


WORKLOAD_WIDE = ["Containers", "Images", "Selector"]


@pytest.mark.parametrize(
    ("name", "columns", "wide"),
    [
        ("pod", ["Name", "Ready", "Status", "Restarts", "Age", "IP", "Node", "Nominated Node", "Readiness Gates"],
         ["IP", "Node", "Nominated Node", "Readiness Gates"]),
        ("deployment", ["Name", "Ready", "Up-to-date", "Available", "Age", *WORKLOAD_WIDE], WORKLOAD_WIDE),
        ("replica_set", ["Name", "Desired", "Current", "Ready", "Age", *WORKLOAD_WIDE], WORKLOAD_WIDE),
        ("replication_controller", ["Name", "Desired", "Current", "Ready", "Age", *WORKLOAD_WIDE], WORKLOAD_WIDE),
        ("stateful_set", ["Name", "Ready", "Age", "Containers", "Images"], ["Containers", "Images"]),
        ("daemon_set", ["Name", "Desired", "Current", "Ready", "Up-to-date", "Available", "Node Selector", "Age",
                        *WORKLOAD_WIDE], WORKLOAD_WIDE),
        ("job", ["Name", "Status", "Completions", "Duration", "Age", *WORKLOAD_WIDE], WORKLOAD_WIDE),
        ("cron_job", ["Name", "Schedule", "Timezone", "Suspend", "Active", "Last Schedule", "Age", *WORKLOAD_WIDE],
         WORKLOAD_WIDE),
        ("service", ["Name", "Type", "Cluster-IP", "External-IP", "Port(s)", "Age", "Selector"], ["Selector"]),
        ("node", ["Name", "Status", "Roles", "Age", "Version", "Internal-IP", "External-IP", "OS-Image",
                  "Kernel-Version", "Container-Runtime"],
         ["Internal-IP", "External-IP", "OS-Image", "Kernel-Version", "Container-Runtime"]),
        ("event", ["Last Seen", "Type", "Reason", "Object", "Subobject", "Source", "Message", "First Seen", "Count",
                   "Name"], ["Subobject", "Source", "First Seen", "Count", "Name"]),
        ("namespace", ["Name", "Status", "Age"], []),
        ("config_map", ["Name", "Data", "Age"], []),
        ("secret", ["Name", "Type", "Data", "Age"], []),
        ("service_account", ["Name", "Secrets", "Age"], []),
        ("endpoints", ["Name", "Endpoints", "Age"], []),
        ("persistent_volume", ["Name", "Capacity", "Access Modes", "Reclaim Policy", "Status", "Claim",
                               "StorageClass", "VolumeAttributesClass", "Reason", "Age", "VolumeMode"],
         ["VolumeMode"]),
        ("persistent_volume_claim", ["Name", "Status", "Volume", "Capacity", "Access Modes", "StorageClass",
                                     "VolumeAttributesClass", "Age", "VolumeMode"], ["VolumeMode"]),
        ("horizontal_pod_autoscaler", ["Name", "Reference", "Targets", "MinPods", "MaxPods", "Replicas", "Age"], []),
        ("pod_disruption_budget", ["Name", "Min Available", "Max Unavailable", "Allowed Disruptions", "Age"], []),
        ("lease", ["Name", "Holder", "Age"], []),
        ("controller_revision", ["Name", "Controller", "Revision", "Age"], []),
        ("ingress", ["Name", "Class", "Hosts", "Address", "Ports", "Age"], []),
        ("ingress_class", ["Name", "Controller", "Parameters", "Age"], []),
        ("network_policy", ["Name", "Pod-Selector", "Age"], []),
        ("storage_class", ["Name", "Provisioner", "ReclaimPolicy", "VolumeBindingMode", "AllowVolumeExpansion",
                           "Age"], []),
        ("role_binding", ["Name", "Role", "Age", "Users", "Groups", "ServiceAccounts"],
         ["Users", "Groups", "ServiceAccounts"]),
        ("cluster_role_binding", ["Name", "Role", "Age", "Users", "Groups", "ServiceAccounts"],
         ["Users", "Groups", "ServiceAccounts"]),
        ("priority_class", ["Name", "Value", "Global-Default", "Age", "PreemptionPolicy"], []),
        ("resource_quota", ["Name", "Age", "Request", "Limit"], []),
        ("endpoint_slice", ["Name", "AddressType", "Ports", "Endpoints", "Age"], []),
        ("pod_template", ["Name", "Containers", "Images", "Pod Labels"], []),
        ("role", ["Name", "Created At"], []),
        ("cluster_role", ["Name", "Created At"], []),
        ("limit_range", ["Name", "Created At"], []),
    ],
)
def test_column_names_and_wide_columns(name: str, columns: list[str], wide: list[str]) -> None:
    printer = getattr(printers, name)
    assert [column["name"] for column in printer.columns] == columns
    assert [column["name"] for column in printer.columns if column["priority"] == 1] == wide
    assert next(c for c in printer.columns if c["name"] == "Name")["format"] == "name"
    assert [c["name"] for c in printer.columns if c["format"]] == ["Name"]


def test_column_types() -> None:
    types = {c["name"]: c["type"] for c in printers.replica_set.columns}
    assert types == {"Name": "string", "Desired": "integer", "Current": "integer", "Ready": "integer",
                     "Age": "string", "Containers": "string", "Images": "string", "Selector": "string"}
    assert [c["type"] for c in printers.cron_job.columns][3:5] == ["boolean", "integer"]
    assert [c["type"] for c in printers.priority_class.columns][1:3] == ["integer", "boolean"]
    assert printers.DEFAULT.columns[1]["type"] == "date"
    assert printers.pod.columns[3]["type"] == "string"
    assert printers.pod_disruption_budget.columns[3]["type"] == "integer"
    assert printers.event.columns[-1]["format"] == "name"


def test_descriptions_are_upstreams() -> None:
    assert printers.pod.columns[0]["description"].startswith("Name must be unique within a namespace.")
    assert printers.pod.columns[4]["description"].startswith("CreationTimestamp is a timestamp representing")
    assert printers.pod.columns[5]["description"] == (
        "podIP address allocated to the pod. Routable at least within the cluster. Empty if not yet allocated."
    )
    assert printers.node.columns[4]["description"] == "Kubelet Version reported by the node."
    assert printers.lease.columns[1]["description"] == (
        "holderIdentity contains the identity of the holder of a current lease. If Coordinated Leader Election "
        "is used, the holder identity must be equal to the elected LeaseCandidate.metadata.name field."
    )


# ---------------------------------------------------------------------------------------------
# Pods


def running(name: str = "app", ready: bool = True, restarts: int = 0, finished: float | None = None) -> dict:
    status: dict = {"name": name, "ready": ready, "restartCount": restarts,
                    "state": {"running": {"startedAt": ago(600)}}}
    if finished is not None:
        status["lastState"] = {"terminated": {"exitCode": 1, "reason": "Error", "finishedAt": ago(finished)}}
    return status


def a_pod(containers: int = 1, statuses: list | None = None, phase: str = "Running", **extra: object) -> dict:
    spec = {"containers": [{"name": f"c{i}", "image": "nginx"} for i in range(containers)]}
    spec.update(extra.pop("spec", {}))
    status = {"phase": phase, "containerStatuses": statuses or []}
    status.update(extra.pop("status", {}))
    return {"kind": "Pod", "metadata": extra.pop("metadata", meta("p", 5 * 3600)), "spec": spec, "status": status}


def waiting(reason: str, restarts: int = 0, finished: float | None = None) -> dict:
    status = running(ready=False, restarts=restarts, finished=finished)
    status["state"] = {"waiting": {"reason": reason}}
    return status


def terminated(**state: object) -> dict:
    status = running(ready=False)
    status["state"] = {"terminated": state}
    return status


SIDECAR_SPEC = {"initContainers": [{"name": "proxy", "image": "envoy", "restartPolicy": "Always"}]}
INITIALIZED = {"conditions": [{"type": "Initialized", "status": "True"}, {"type": "Ready", "status": "True"}]}


@pytest.mark.parametrize(
    ("pod", "ready", "status", "restarts"),
    [
        pytest.param(a_pod(2, [running("a"), running("b", restarts=2, finished=300)]), "2/2", "Running",
                     "2 (5m ago)", id="running"),
        pytest.param(a_pod(1, [running(restarts=4)]), "1/1", "Running", "4", id="restarts-without-time"),
        pytest.param(a_pod(1, [running(ready=False)]), "0/1", "Running", "0", id="running-not-ready"),
        pytest.param(a_pod(1, [waiting("ContainerCreating")], "Pending"), "0/1", "ContainerCreating", "0",
                     id="creating"),
        pytest.param(a_pod(1, [waiting("CrashLoopBackOff", 3, 30)]), "0/1", "CrashLoopBackOff",
                     "3 (30s ago)", id="crashloop"),
        pytest.param(a_pod(1, [terminated(exitCode=0, reason="Completed")], "Succeeded"), "0/1", "Completed",
                     "0", id="completed"),
        pytest.param(a_pod(1, [terminated(exitCode=1, reason="Error")], "Failed"), "0/1", "Error", "0",
                     id="error"),
        pytest.param(a_pod(1, [terminated(exitCode=2)], "Failed"), "0/1", "ExitCode:2", "0", id="exit-code"),
        pytest.param(a_pod(1, [terminated(exitCode=137, signal=9)], "Failed"), "0/1", "Signal:9", "0",
                     id="signal"),
        pytest.param(a_pod(1, [], "Pending"), "0/1", "Pending", "0", id="no-statuses"),
        pytest.param(a_pod(1, [], "Failed", status={"reason": "Evicted"}), "0/1", "Evicted", "0", id="evicted"),
        pytest.param(
            a_pod(1, [], "Pending", status={"conditions": [
                {"type": "PodScheduled", "status": "False", "reason": "SchedulingGated"}]}),
            "0/1", "SchedulingGated", "0", id="scheduling-gated"),
        pytest.param(
            a_pod(2, [terminated(exitCode=0, reason="Completed"), running("b")], status=INITIALIZED),
            "1/2", "Running", "0", id="completed-with-running-sibling-ready"),
        pytest.param(
            a_pod(2, [terminated(exitCode=0, reason="Completed"), running("b")]),
            "1/2", "NotReady", "0", id="completed-with-running-sibling-not-ready"),
        pytest.param(
            a_pod(2, [waiting("ImagePullBackOff"), waiting("ErrImagePull")]), "0/2", "ImagePullBackOff", "0",
            id="first-container-reason-wins"),
        pytest.param(
            a_pod(1, [running()], metadata=meta("p", 5 * 3600, deletionTimestamp=ago(10))),
            "1/1", "Terminating", "0", id="terminating"),
        pytest.param(
            a_pod(1, [running()], status={"reason": "NodeLost"},
                  metadata=meta("p", 5 * 3600, deletionTimestamp=ago(10))),
            "1/1", "Unknown", "0", id="node-lost"),
        pytest.param(
            a_pod(1, [terminated(exitCode=0, reason="Completed")], "Succeeded",
                  metadata=meta("p", 5 * 3600, deletionTimestamp=ago(10))),
            "0/1", "Completed", "0", id="terminal-pod-being-deleted-keeps-status"),
    ],
)
def test_pod_status_cells(pod: dict, ready: str, status: str, restarts: str) -> None:
    assert cells("pod", pod)[:5] == ["p", ready, status, restarts, "5h"]


def init_status(name: str, **state: object) -> dict:
    return {"name": name, "ready": False, "restartCount": 0, "state": state}


def init_pod(statuses: list, init_count: int = 2, **extra: object) -> dict:
    spec = {"initContainers": [{"name": f"i{i}", "image": "busybox"} for i in range(init_count)]}
    return a_pod(1, [waiting("PodInitializing")], "Pending", spec=spec,
                 status={"initContainerStatuses": statuses, **extra})


@pytest.mark.parametrize(
    ("pod", "status"),
    [
        pytest.param(init_pod([init_status("i0", terminated={"exitCode": 0}), init_status("i1", running={})]),
                     "Init:1/2", id="second-running"),
        pytest.param(init_pod([init_status("i0", waiting={"reason": "PodInitializing"})]), "Init:0/2",
                     id="pod-initializing"),
        pytest.param(init_pod([init_status("i0", waiting={"reason": "ImagePullBackOff"})]),
                     "Init:ImagePullBackOff", id="waiting-reason"),
        pytest.param(init_pod([init_status("i0", terminated={"exitCode": 1, "reason": "Error"})]), "Init:Error",
                     id="terminated-reason"),
        pytest.param(init_pod([init_status("i0", terminated={"exitCode": 3})]), "Init:ExitCode:3",
                     id="exit-code"),
        pytest.param(init_pod([init_status("i0", terminated={"exitCode": 143, "signal": 15})]), "Init:Signal:15",
                     id="signal"),
        pytest.param(
            init_pod([init_status("i0", terminated={"exitCode": 0}), init_status("i1", terminated={"exitCode": 0})]),
            "PodInitializing", id="all-done-app-waiting"),
    ],
)
def test_pod_init_container_status(pod: dict, status: str) -> None:
    assert cells("pod", pod)[2] == status


def test_pod_init_restarts_are_counted_only_while_initializing() -> None:
    initializing = init_pod([dict(init_status("i0", waiting={"reason": "CrashLoopBackOff"}), restartCount=3)])
    assert cells("pod", initializing)[2:4] == ["Init:CrashLoopBackOff", "3"]
    done = a_pod(1, [running(restarts=1)], spec={"initContainers": [{"name": "i0"}]},
                 status={"initContainerStatuses": [dict(init_status("i0", terminated={"exitCode": 0}),
                                                        restartCount=3)], **INITIALIZED})
    assert cells("pod", done)[1:4] == ["1/1", "Running", "1"]


def test_pod_sidecar_counts_in_ready_and_restarts() -> None:
    sidecar = {"name": "proxy", "ready": True, "started": True, "restartCount": 1,
               "state": {"running": {}}, "lastState": {"terminated": {"exitCode": 1, "finishedAt": ago(150)}}}
    pod = a_pod(1, [running("c0", restarts=0)], spec=SIDECAR_SPEC,
                status={"initContainerStatuses": [sidecar], **INITIALIZED})
    assert cells("pod", pod)[1:4] == ["2/2", "Running", "1 (2m30s ago)"]
    not_started = dict(sidecar, started=False, ready=False, state={"waiting": {"reason": "CrashLoopBackOff"}})
    pending = a_pod(1, [waiting("PodInitializing")], "Pending", spec=SIDECAR_SPEC,
                    status={"initContainerStatuses": [not_started]})
    assert cells("pod", pending)[1:4] == ["0/2", "Init:CrashLoopBackOff", "1 (2m30s ago)"]


def test_pod_wide_cells() -> None:
    pod = a_pod(1, [running()], spec={"nodeName": "node-a", "readinessGates": [
        {"conditionType": "example.com/one"}, {"conditionType": "example.com/two"}]},
        status={"podIP": "10.0.0.9", "podIPs": [{"ip": "10.0.0.5"}, {"ip": "fd00::5"}],
                "nominatedNodeName": "node-b",
                "conditions": [{"type": "example.com/one", "status": "True"},
                               {"type": "example.com/two", "status": "False"}]})
    assert cells("pod", pod)[5:] == ["10.0.0.5", "node-a", "node-b", "1/2"]
    assert cells("pod", a_pod(1, [], status={"podIP": "10.0.0.9"}))[5:] == ["<none>"] * 4


@pytest.mark.parametrize(
    ("phase", "expected"),
    [
        ("Succeeded", [{"type": "Completed", "status": "True", "reason": "Succeeded",
                        "message": "The pod has completed successfully."}]),
        ("Failed", [{"type": "Completed", "status": "True", "reason": "Failed", "message": "The pod failed."}]),
        ("Running", None),
        ("Pending", None),
    ],
)
def test_row_conditions(phase: str, expected: list | None) -> None:
    assert printers.row_conditions(a_pod(1, [], phase)) == expected


def test_row_conditions_only_for_pods() -> None:
    assert printers.row_conditions({"kind": "PersistentVolume", "status": {"phase": "Failed"}}) is None


# ---------------------------------------------------------------------------------------------
# Workloads

TEMPLATE = {"metadata": {"labels": {"app": "web"}},
            "spec": {"containers": [{"name": "web", "image": "nginx:1.25"}, {"name": "log", "image": "busybox"}]}}
SELECTOR = {"matchLabels": {"app": "web", "tier": "front"}}


@pytest.mark.parametrize(
    ("name", "obj", "expected"),
    [
        ("deployment",
         {"metadata": meta("web"), "spec": {"replicas": 3, "selector": SELECTOR, "template": TEMPLATE},
          "status": {"readyReplicas": 1, "updatedReplicas": 2, "availableReplicas": 1}},
         ["web", "1/3", 2, 1, "5m", "web,log", "nginx:1.25,busybox", "app=web,tier=front"]),
        ("deployment",
         {"metadata": meta("web"), "spec": {"replicas": 1, "selector": {}, "template": TEMPLATE}},
         ["web", "0/1", 0, 0, "5m", "web,log", "nginx:1.25,busybox", ""]),
        ("replica_set",
         {"metadata": meta("web-7d9f"), "spec": {"replicas": 3, "selector": SELECTOR, "template": TEMPLATE},
          "status": {"replicas": 3, "readyReplicas": 2}},
         ["web-7d9f", 3, 3, 2, "5m", "web,log", "nginx:1.25,busybox", "app=web,tier=front"]),
        ("replication_controller",
         {"metadata": meta("rc"), "spec": {"replicas": 2, "selector": {"b": "2", "a": "1"}, "template": TEMPLATE},
          "status": {"replicas": 2, "readyReplicas": 2}},
         ["rc", 2, 2, 2, "5m", "web,log", "nginx:1.25,busybox", "a=1,b=2"]),
        ("stateful_set",
         {"metadata": meta("db"), "spec": {"replicas": 3, "template": TEMPLATE}, "status": {"readyReplicas": 2}},
         ["db", "2/3", "5m", "web,log", "nginx:1.25,busybox"]),
        ("daemon_set",
         {"metadata": meta("agent"),
          "spec": {"selector": SELECTOR, "template": {"spec": {"nodeSelector": {"kubernetes.io/os": "linux"},
                                                               "containers": [{"name": "a", "image": "agent"}]}}},
          "status": {"desiredNumberScheduled": 3, "currentNumberScheduled": 3, "numberReady": 2,
                     "updatedNumberScheduled": 3, "numberAvailable": 2}},
         ["agent", 3, 3, 2, 3, 2, "kubernetes.io/os=linux", "5m", "a", "agent", "app=web,tier=front"]),
        ("pod_template",
         {"metadata": meta("tpl"), "template": TEMPLATE},
         ["tpl", "web,log", "nginx:1.25,busybox", "app=web"]),
        ("controller_revision",
         {"metadata": meta("web-6c5", ownerReferences=[
             {"apiVersion": "v1", "kind": "Pod", "name": "other"},
             {"apiVersion": "apps/v1", "kind": "StatefulSet", "name": "web", "controller": True}]),
          "revision": 4},
         ["web-6c5", "statefulset.apps/web", 4, "5m"]),
        ("controller_revision",
         {"metadata": meta("r", ownerReferences=[{"apiVersion": "v1", "kind": "Thing", "name": "t",
                                                   "controller": True}]), "revision": 1},
         ["r", "thing/t", 1, "5m"]),
    ],
)
def test_workload_cells(name: str, obj: dict, expected: list) -> None:
    assert cells(name, obj) == expected


def a_job(conditions: list | None = None, **spec: object) -> dict:
    return {"metadata": meta("job"),
            "spec": {"selector": {"matchLabels": {"batch.kubernetes.io/controller-uid": "u1"}},
                     "template": {"spec": {"containers": [{"name": "pi", "image": "perl"}]}}, **spec},
            "status": {"conditions": conditions or []}}


def holds(*types: str) -> list:
    return [{"type": t, "status": "True"} for t in types]


@pytest.mark.parametrize(
    ("job", "status"),
    [
        (a_job(), "Running"),
        (a_job(holds("SuccessCriteriaMet", "Complete")), "Complete"),
        (a_job(holds("FailureTarget", "Failed")), "Failed"),
        (a_job(holds("Suspended")), "Suspended"),
        (a_job(holds("FailureTarget")), "FailureTarget"),
        (a_job([{"type": "Complete", "status": "False"}]), "Running"),
        # SuccessCriteriaMet got its own status only in v1.34.
        (a_job(holds("SuccessCriteriaMet")), "Running"),
        (dict(a_job(holds("Suspended")), metadata=meta("job", deletionTimestamp=ago(1))), "Terminating"),
        (dict(a_job(holds("Complete")), metadata=meta("job", deletionTimestamp=ago(1))), "Complete"),
    ],
)
def test_job_status(job: dict, status: str) -> None:
    assert cells("job", job)[1] == status


def test_job_cells() -> None:
    job = a_job(completions=3, parallelism=2)
    job["status"].update(succeeded=1, startTime=ago(150))
    assert cells("job", job) == ["job", "Running", "1/3", "2m30s", "5m", "pi", "perl",
                                 "batch.kubernetes.io/controller-uid=u1"]
    done = a_job(holds("Complete"), completions=1)
    done["status"].update(succeeded=1, startTime=ago(250), completionTime=ago(200))
    assert cells("job", done)[1:4] == ["Complete", "1/1", "50s"]
    assert cells("job", a_job(parallelism=4))[2:4] == ["0/1 of 4", ""]
    assert cells("job", a_job(parallelism=1))[2] == "0/1"


def test_cron_job_cells() -> None:
    cron = {"metadata": meta("nightly"),
            "spec": {"schedule": "0 3 * * *", "suspend": False,
                     "jobTemplate": {"spec": {"template": {"spec": {"containers": [{"name": "c", "image": "i"}]}}}}},
            "status": {"active": [{"name": "nightly-1"}], "lastScheduleTime": ago(7200)}}
    assert cells("cron_job", cron) == ["nightly", "0 3 * * *", "<none>", "False", 1, "120m", "5m", "c", "i",
                                       "<none>"]
    cron["spec"].update(timeZone="Europe/Paris", suspend=True)
    cron["status"] = {}
    assert cells("cron_job", cron)[2:6] == ["Europe/Paris", "True", 0, "<none>"]


def hpa(metrics: list, current: list | None = None, **spec: object) -> dict:
    return {"metadata": meta("web"),
            "spec": {"scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web"},
                     "maxReplicas": 10, "metrics": metrics, **spec},
            "status": {"currentReplicas": 2, "currentMetrics": current or []}}


CPU_80 = {"type": "Resource", "resource": {"name": "cpu", "target": {"type": "Utilization", "averageUtilization": 80}}}


@pytest.mark.parametrize(
    ("obj", "targets"),
    [
        (hpa([CPU_80]), "cpu: <unknown>/80%"),
        (hpa([CPU_80], [{"type": "Resource", "resource": {"name": "cpu", "current": {"averageUtilization": 50,
                                                                                      "averageValue": "100m"}}}]),
         "cpu: 50%/80%"),
        (hpa([{"type": "Resource", "resource": {"name": "memory", "target": {"type": "AverageValue",
                                                                             "averageValue": "1024Mi"}}}],
             [{"type": "Resource", "resource": {"name": "memory", "current": {"averageValue": "512Mi"}}}]),
         "memory: 512Mi/1Gi"),
        (hpa([{"type": "Resource", "resource": {"name": "cpu", "target": {"type": "Utilization"}}}]),
         "cpu: <unknown>/<auto>"),
        (hpa([{"type": "Pods", "pods": {"metric": {"name": "qps"}, "target": {"type": "AverageValue",
                                                                                "averageValue": "1k"}}}]),
         "<unknown>/1k"),
        (hpa([{"type": "Object", "object": {"metric": {"name": "hits"}, "target": {"type": "Value", "value": "10"}}}],
             [{"type": "Object", "object": {"metric": {"name": "hits"}, "current": {"value": "2500m"}}}]),
         "2500m/10"),
        (hpa([{"type": "External", "external": {"metric": {"name": "q"},
                                                "target": {"type": "AverageValue", "averageValue": "30"}}}]),
         "<unknown>/30 (avg)"),
        (hpa([{"type": "ContainerResource", "containerResource": {
            "name": "cpu", "container": "app", "target": {"type": "Utilization", "averageUtilization": 60}}}]),
         "cpu: <unknown>/60%"),
        (hpa([CPU_80, CPU_80, CPU_80]), "cpu: <unknown>/80%, cpu: <unknown>/80% + 1 more..."),
        (hpa([{"type": "Other"}]), "<unknown type>"),
        (hpa([]), "<none>"),
    ],
)
def test_hpa_targets(obj: dict, targets: str) -> None:
    assert cells("horizontal_pod_autoscaler", obj)[2] == targets


def test_hpa_cells() -> None:
    assert cells("horizontal_pod_autoscaler", hpa([CPU_80], minReplicas=2)) == [
        "web", "Deployment/web", "cpu: <unknown>/80%", "2", 10, 2, "5m"]
    assert cells("horizontal_pod_autoscaler", hpa([CPU_80]))[3] == "<unset>"


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ({"minAvailable": 2}, ["2", "N/A"]),
        ({"maxUnavailable": "25%"}, ["N/A", "25%"]),
        ({}, ["N/A", "N/A"]),
    ],
)
def test_pod_disruption_budget(spec: dict, expected: list) -> None:
    obj = {"metadata": meta("pdb"), "spec": spec, "status": {"disruptionsAllowed": 1}}
    assert cells("pod_disruption_budget", obj) == ["pdb", *expected, 1, "5m"]


# ---------------------------------------------------------------------------------------------
# Services and networking


def svc(spec: dict, status: dict | None = None) -> dict:
    return {"metadata": meta("svc"), "spec": spec, "status": status or {}}


@pytest.mark.parametrize(
    ("obj", "expected"),
    [
        (svc({"type": "ClusterIP", "clusterIP": "10.96.0.10", "clusterIPs": ["10.96.0.10"],
              "ports": [{"port": 80, "protocol": "TCP"}, {"port": 53, "protocol": "UDP"}],
              "selector": {"app": "web"}}),
         ["svc", "ClusterIP", "10.96.0.10", "<none>", "80/TCP,53/UDP", "5m", "app=web"]),
        (svc({"type": "ClusterIP", "clusterIPs": ["None"], "ports": [], "externalIPs": ["1.2.3.4", "5.6.7.8"]}),
         ["svc", "ClusterIP", "None", "1.2.3.4,5.6.7.8", "<none>", "5m", "<none>"]),
        (svc({"type": "NodePort", "clusterIPs": ["10.96.1.1"],
              "ports": [{"port": 80, "nodePort": 30080, "protocol": "TCP"}]}),
         ["svc", "NodePort", "10.96.1.1", "<none>", "80:30080/TCP", "5m", "<none>"]),
        (svc({"type": "LoadBalancer", "clusterIPs": ["10.96.1.2"],
              "ports": [{"port": 443, "nodePort": 31443, "protocol": "TCP"}]}),
         ["svc", "LoadBalancer", "10.96.1.2", "<pending>", "443:31443/TCP", "5m", "<none>"]),
        (svc({"type": "LoadBalancer", "clusterIPs": ["10.96.1.2"]},
             {"loadBalancer": {"ingress": [{"ip": "203.0.113.9"}, {"hostname": "lb.example.com"},
                                           {"ip": "198.51.100.7"}, {"ip": "203.0.113.9"}]}}),
         ["svc", "LoadBalancer", "10.96.1.2", "198.51.100.7,203.0.113.9,lb.example.com", "<none>", "5m", "<none>"]),
        (svc({"type": "LoadBalancer", "clusterIPs": ["10.96.1.2"], "externalIPs": ["1.1.1.1"]},
             {"loadBalancer": {"ingress": [{"ip": "2.2.2.2"}]}}),
         ["svc", "LoadBalancer", "10.96.1.2", "2.2.2.2,1.1.1.1", "<none>", "5m", "<none>"]),
        (svc({"type": "ExternalName", "externalName": "db.example.com"}),
         ["svc", "ExternalName", "<none>", "db.example.com", "<none>", "5m", "<none>"]),
    ],
)
def test_service_cells(obj: dict, expected: list) -> None:
    assert cells("service", obj) == expected


@pytest.mark.parametrize(
    ("subsets", "expected"),
    [
        ([], "<none>"),
        ([{"addresses": [{"ip": "10.0.0.1"}, {"ip": "10.0.0.2"}], "ports": [{"port": 8080}]}],
         "10.0.0.1:8080,10.0.0.2:8080"),
        ([{"addresses": [{"ip": "10.0.0.1"}, {"ip": "10.0.0.2"}], "ports": [{"port": 80}, {"port": 443}]}],
         "10.0.0.1:80,10.0.0.2:80,10.0.0.1:443 + 1 more..."),
        ([{"addresses": [{"ip": "10.0.0.1"}]}, {"addresses": [{"ip": "fd00::1"}], "ports": [{"port": 53}]}],
         "10.0.0.1,[fd00::1]:53"),
        ([{"addresses": [{"ip": f"10.0.0.{i}"} for i in range(5)], "ports": [{"port": 80}]},
          {"addresses": [{"ip": "10.0.1.1"}], "ports": [{"port": 80}]}],
         "10.0.0.0:80,10.0.0.1:80,10.0.0.2:80 + 3 more..."),
        ([{"notReadyAddresses": [{"ip": "10.0.0.1"}], "ports": [{"port": 80}]}], ""),
    ],
)
def test_endpoints_cells(subsets: list, expected: str) -> None:
    assert cells("endpoints", {"metadata": meta("ep"), "subsets": subsets}) == ["ep", expected, "5m"]


def test_endpoint_slice_cells() -> None:
    eps = {"metadata": meta("web-abc"), "addressType": "IPv4",
           "ports": [{"port": 80, "name": "http"}, {"name": "named"}, {}, {"port": 9}],
           "endpoints": [{"addresses": ["10.0.0.1"]}, {"addresses": ["10.0.0.2", "10.0.0.3"]}]}
    assert cells("endpoint_slice", eps) == ["web-abc", "IPv4", "80,named,* + 1 more...",
                                            "10.0.0.1,10.0.0.2,10.0.0.3", "5m"]
    empty = {"metadata": meta("e"), "addressType": "IPv6"}
    assert cells("endpoint_slice", empty) == ["e", "IPv6", "<unset>", "<unset>", "5m"]


@pytest.mark.parametrize(
    ("spec", "status", "expected"),
    [
        ({"ingressClassName": "nginx", "rules": [{"host": "a.example.com"}, {"host": "b.example.com"}]},
         {"loadBalancer": {"ingress": [{"ip": "192.0.2.1"}]}},
         ["ing", "nginx", "a.example.com,b.example.com", "192.0.2.1", "80", "5m"]),
        ({"rules": [{}], "tls": [{"hosts": ["a.example.com"]}]}, {}, ["ing", "<none>", "*", "", "80, 443", "5m"]),
        ({"rules": [{"host": f"h{i}"} for i in range(5)]}, {}, ["ing", "<none>", "h0,h1,h2 + 2 more...", "", "80",
                                                                 "5m"]),
        ({"rules": [{}, {"host": "h1"}, {"host": "h2"}, {"host": "h3"}]}, {},
         ["ing", "<none>", "h1,h2,h3", "", "80", "5m"]),
    ],
)
def test_ingress_cells(spec: dict, status: dict, expected: list) -> None:
    assert cells("ingress", {"metadata": meta("ing"), "spec": spec, "status": status}) == expected


def test_ingress_class_and_network_policy() -> None:
    klass = {"metadata": meta("nginx"), "spec": {"controller": "k8s.io/ingress-nginx", "parameters": {
        "apiGroup": "k8s.example.com", "kind": "IngressParameters", "name": "external-lb"}}}
    assert cells("ingress_class", klass) == ["nginx", "k8s.io/ingress-nginx",
                                             "IngressParameters.k8s.example.com/external-lb", "5m"]
    assert cells("ingress_class", {"metadata": meta("c"), "spec": {"controller": "x"}}) == ["c", "x", "<none>", "5m"]
    policy = {"metadata": meta("deny"), "spec": {"podSelector": {
        "matchLabels": {"role": "db"},
        "matchExpressions": [{"key": "env", "operator": "In", "values": ["prod", "dev"]},
                             {"key": "canary", "operator": "DoesNotExist"},
                             {"key": "app", "operator": "Exists"},
                             {"key": "zone", "operator": "NotIn", "values": ["b"]}]}}}
    assert cells("network_policy", policy) == ["deny", "app,!canary,env in (dev,prod),role=db,zone notin (b)",
                                               "5m"]
    assert cells("network_policy", {"metadata": meta("all"), "spec": {"podSelector": {}}}) == ["all", "<none>", "5m"]
    bad = {"metadata": meta("bad"), "spec": {"podSelector": {"matchExpressions": [{"key": "a", "operator": "In"}]}}}
    assert cells("network_policy", bad)[1] == "<error>"


# ---------------------------------------------------------------------------------------------
# Cluster objects


def test_node_cells() -> None:
    node = {"metadata": meta("n1", 3 * 86400, labels={"node-role.kubernetes.io/control-plane": "",
                                                      "node-role.kubernetes.io/": "", "kubernetes.io/role": "master",
                                                      "node-role.kubernetes.io/worker": "true"}),
            "spec": {"unschedulable": True},
            "status": {"conditions": [{"type": "MemoryPressure", "status": "False"},
                                      {"type": "Ready", "status": "True"}],
                       "addresses": [{"type": "Hostname", "address": "n1"},
                                     {"type": "InternalIP", "address": "172.18.0.2"}],
                       "nodeInfo": {"kubeletVersion": "v1.32.0", "osImage": "Debian GNU/Linux 12 (bookworm)",
                                    "kernelVersion": "6.1.0", "containerRuntimeVersion": "containerd://1.7.24"}}}
    assert cells("node", node) == ["n1", "Ready,SchedulingDisabled", "control-plane,master,worker", "3d", "v1.32.0",
                                   "172.18.0.2", "<none>", "Debian GNU/Linux 12 (bookworm)", "6.1.0",
                                   "containerd://1.7.24"]


@pytest.mark.parametrize(
    ("conditions", "status"),
    [
        ([{"type": "Ready", "status": "False"}], "NotReady"),
        ([{"type": "Ready", "status": "Unknown"}], "NotReady"),
        ([{"type": "DiskPressure", "status": "False"}], "Unknown"),
        ([], "Unknown"),
    ],
)
def test_node_status(conditions: list, status: str) -> None:
    assert cells("node", {"metadata": meta("n"), "status": {"conditions": conditions}})[1:3] == [status, "<none>"]


def test_namespace_configmap_secret_serviceaccount() -> None:
    assert cells("namespace", {"metadata": meta("dev"), "status": {"phase": "Terminating"}}) == [
        "dev", "Terminating", "5m"]
    assert cells("config_map", {"metadata": meta("cm"), "data": {"a": "1", "b": "2"}, "binaryData": {"c": "AA=="}}) == [
        "cm", 3, "5m"]
    assert cells("secret", {"metadata": meta("s"), "type": "kubernetes.io/tls", "data": {"tls.crt": "", "tls.key": ""}}
                 ) == ["s", "kubernetes.io/tls", 2, "5m"]
    assert cells("service_account", {"metadata": meta("default"), "secrets": [{"name": "t"}]}) == [
        "default", 1, "5m"]


def an_event(**fields: object) -> dict:
    return {"metadata": meta("web.17a"), "involvedObject": {"kind": "Pod", "name": "web",
                                                            "fieldPath": "spec.containers{web}"},
            "reason": "Pulled", "message": "  Successfully pulled image\n", "type": "Normal",
            "source": {"component": "kubelet", "host": "node-a"}, **fields}


@pytest.mark.parametrize(
    ("obj", "expected"),
    [
        (an_event(firstTimestamp=ago(600), lastTimestamp=ago(60), count=4),
         ["60s", "Normal", "Pulled", "pod/web", "spec.containers{web}", "kubelet, node-a",
          "Successfully pulled image", "10m", 4, "web.17a"]),
        (an_event(firstTimestamp=None, lastTimestamp=None, eventTime="2024-01-01T11:55:00.000000Z",
                  source={}, reportingComponent="scheduler", reportingInstance="", involvedObject={"kind": "Node"}),
         ["5m", "Normal", "Pulled", "node", "", "scheduler", "Successfully pulled image", "5m", 1, "web.17a"]),
        (an_event(firstTimestamp=ago(3600), lastTimestamp=ago(900), count=2,
                  series={"count": 7, "lastObservedTime": "2024-01-01T11:59:30.000000Z"}),
         ["30s", "Normal", "Pulled", "pod/web", "spec.containers{web}", "kubelet, node-a",
          "Successfully pulled image", "60m", 7, "web.17a"]),
        (an_event(firstTimestamp=ago(100)),
         ["100s", "Normal", "Pulled", "pod/web", "spec.containers{web}", "kubelet, node-a",
          "Successfully pulled image", "100s", 1, "web.17a"]),
    ],
)
def test_event_cells(obj: dict, expected: list) -> None:
    assert cells("event", obj) == expected


# ---------------------------------------------------------------------------------------------
# Storage


def test_persistent_volume_cells() -> None:
    pv = {"metadata": meta("pv1"),
          "spec": {"capacity": {"storage": "10Gi"}, "accessModes": ["ReadWriteMany", "ReadWriteOnce"],
                   "persistentVolumeReclaimPolicy": "Retain", "storageClassName": "standard",
                   "claimRef": {"namespace": "default", "name": "data"}, "volumeMode": "Filesystem"},
          "status": {"phase": "Bound"}}
    assert cells("persistent_volume", pv) == ["pv1", "10Gi", "RWO,RWX", "Retain", "Bound", "default/data", "standard",
                                              "<unset>", "", "5m", "Filesystem"]
    pv["metadata"] = meta("pv1", deletionTimestamp=ago(1),
                          annotations={"volume.beta.kubernetes.io/storage-class": "legacy"})
    pv["spec"].update(volumeAttributesClassName="gold", accessModes=["ReadWriteOncePod", "ReadOnlyMany"])
    pv["status"] = {"phase": "Failed", "reason": "Recycler failed"}
    assert cells("persistent_volume", pv)[2:9] == ["ROX,RWOP", "Retain", "Terminating", "default/data", "legacy",
                                                   "gold", "Recycler failed"]


@pytest.mark.parametrize(
    ("value", "canonical"),
    [("10Gi", "10Gi"), ("1.5Gi", "1536Mi"), ("1024Mi", "1Gi"), ("500m", "500m"), ("0.5", "500m"), ("1000m", "1"),
     ("2000", "2k"), ("1e3", "1e3"), ("12e1", "120"), ("0.1n", "1n"), ("1023Ki", "1023Ki"), ("1024", "1024"),
     ("0", "0"), (5, "5")],
)
def test_quantities_print_canonically(value: object, canonical: str) -> None:
    pv = {"metadata": meta("pv"), "spec": {"capacity": {"storage": value}}}
    assert cells("persistent_volume", pv)[1] == canonical


def test_persistent_volume_claim_cells() -> None:
    bound = {"metadata": meta("data"),
             "spec": {"volumeName": "pv1", "storageClassName": "standard", "resources": {"requests": {
                 "storage": "1Gi"}}},
             "status": {"phase": "Bound", "capacity": {"storage": "10Gi"}, "accessModes": ["ReadWriteOnce"]}}
    assert cells("persistent_volume_claim", bound) == ["data", "Bound", "pv1", "10Gi", "RWO", "standard", "<unset>",
                                                       "5m", "<unset>"]
    pending = {"metadata": meta("data"), "spec": {"volumeMode": "Block", "volumeAttributesClassName": "gold"},
               "status": {"phase": "Pending"}}
    assert cells("persistent_volume_claim", pending) == ["data", "Pending", "", "", "", "", "gold", "5m", "Block"]


def test_storage_class_cells() -> None:
    sc = {"metadata": meta("standard", annotations={"storageclass.kubernetes.io/is-default-class": "true"}),
          "provisioner": "rancher.io/local-path", "reclaimPolicy": "Retain", "volumeBindingMode": "WaitForFirstConsumer",  # noqa: E501
          "allowVolumeExpansion": True}
    assert cells("storage_class", sc) == ["standard (default)", "rancher.io/local-path", "Retain",
                                          "WaitForFirstConsumer", True, "5m"]
    beta = {"metadata": meta("old", annotations={"storageclass.beta.kubernetes.io/is-default-class": "true"}),
            "provisioner": "p"}
    assert cells("storage_class", beta) == ["old (default)", "p", "Delete", "Immediate", False, "5m"]


# ---------------------------------------------------------------------------------------------
# Policy, RBAC, coordination, scheduling


def test_resource_quota_cells() -> None:
    quota = {"metadata": meta("compute"),
             "status": {"hard": {"requests.cpu": "2", "limits.memory": "2Gi", "pods": "10", "limits.cpu": "4000m",
                                 "requests.memory": "1024Mi"},
                        "used": {"requests.cpu": "500m", "pods": "3", "limits.memory": "512Mi"}}}
    assert cells("resource_quota", quota) == [
        "compute", "5m", "pods: 3/10, requests.cpu: 500m/2, requests.memory: 0/1Gi",
        "limits.cpu: 0/4, limits.memory: 512Mi/2Gi"]


def test_bindings_and_default_printers() -> None:
    binding = {"metadata": meta("rb"), "roleRef": {"kind": "ClusterRole", "name": "view"},
               "subjects": [{"kind": "User", "name": "alice"}, {"kind": "Group", "name": "devs"},
                            {"kind": "User", "name": "bob"},
                            {"kind": "ServiceAccount", "namespace": "ci", "name": "runner"}]}
    assert cells("role_binding", binding) == ["rb", "ClusterRole/view", "5m", "alice, bob", "devs", "ci/runner"]
    assert cells("cluster_role_binding", {"metadata": meta("crb"), "roleRef": {"kind": "ClusterRole", "name": "x"}}
                 ) == ["crb", "ClusterRole/x", "5m", "", "", ""]
    created = {"metadata": {"name": "r", "creationTimestamp": "2024-01-01T13:00:00+01:00"}}
    for name in ("role", "cluster_role", "limit_range"):
        assert cells(name, created) == ["r", "2024-01-01T12:00:00Z"]
    assert printers.DEFAULT.cells({"metadata": {"name": "r"}}, NOW) == ["r", "0001-01-01T00:00:00Z"]


def test_lease_and_priority_class() -> None:
    assert cells("lease", {"metadata": meta("kube-scheduler"), "spec": {"holderIdentity": "node-a_1234"}}) == [
        "kube-scheduler", "node-a_1234", "5m"]
    pc = {"metadata": meta("high"), "value": 1000000, "globalDefault": True, "preemptionPolicy": "Never"}
    assert cells("priority_class", pc) == ["high", 1000000, True, "5m", "Never"]


# ---------------------------------------------------------------------------------------------
# The Table


def test_table_with_metadata_objects() -> None:
    done = a_pod(1, [terminated(exitCode=0, reason="Completed")], "Succeeded")
    live = a_pod(1, [running()])
    result = printers.table(printers.pod, [done, live], NOW)
    assert set(result) == {"kind", "apiVersion", "columnDefinitions", "rows"}
    assert result["kind"] == "Table" and result["apiVersion"] == "meta.k8s.io/v1"
    assert [c["name"] for c in result["columnDefinitions"]][:5] == ["Name", "Ready", "Status", "Restarts", "Age"]
    first, second = result["rows"]
    assert first["cells"] == cells("pod", done)
    assert first["conditions"] == printers.row_conditions(done)
    assert "conditions" not in second
    assert first["object"] == {"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1",
                               "metadata": done["metadata"]}


def test_table_object_modes_and_headers() -> None:
    cm = {"kind": "ConfigMap", "apiVersion": "v1", "metadata": meta("cm"), "data": {"a": "b"}}
    full = printers.table(printers.config_map, [cm], NOW, include_object="Object", with_headers=False)
    assert full["columnDefinitions"] == []
    assert full["rows"] == [{"cells": ["cm", 1, "5m"], "object": cm}]
    bare = printers.table(printers.config_map, [cm], NOW, include_object="None")
    assert bare["rows"] == [{"cells": ["cm", 1, "5m"]}]
    assert printers.table(printers.config_map, [], NOW)["rows"] == []


def test_table_columns_are_copies() -> None:
    result = printers.table(printers.lease, [], NOW)
    result["columnDefinitions"][0]["name"] = "changed"
    assert printers.lease.columns[0]["name"] == "Name"
