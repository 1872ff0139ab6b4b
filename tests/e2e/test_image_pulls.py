"""Image pulls through a real registry: Debian's `docker-registry` listening on loopback inside the test's network
namespace, next to a whole cluster (`netns_cluster`: `pyk8s server` with its real node, containerd and kubelet).
The test builds a busybox OCI image, pushes it over the registry HTTP API v2, and pods pull it through CRI with
each pull policy; a second registry requires a login, which pods get from an imagePullSecret made by
`kubectl create secret docker-registry`. Nothing leaves the namespace: containerd reaches 127.0.0.1:<port> there
over plain HTTP, which it allows for loopback registries without configuration; the same registry at the node's
non-loopback address needs a hosts.toml in the node's containerd `certs.d`, which the first test writes.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from kubernetes import config as k8s_config
from kubernetes import watch
from kubernetes.client import CoreV1Api

from pyk8s.kubelet.runtime.cri import CRIClient, CRIError
from pyk8s.kubelet.runtime.oci import build_oci_archive, busybox_image

from conftest import NODE_IP, NetnsCluster, eventually_async
from registry_fixture import PushedImage, Registry

PUBLIC_PORT = 5000
PRIVATE_PORT = 5001
USER, PASSWORD = "alice", "pull-s3cret"


@pytest.fixture
async def cluster(netns_cluster: NetnsCluster) -> AsyncIterator[NetnsCluster]:
    """The cluster with its node Ready and the default ServiceAccount there (pods are admitted).

    Afterwards the test's pods are deleted through the API first, so that the still running kubelet does not
    start their sandboxes again while the cluster fixture removes sandboxes from containerd."""
    c = netns_cluster

    async def registered() -> bool:
        return c.kubectl("get", "node", c.node_name, check=False).returncode == 0
    await eventually_async(registered, timeout=90, interval=1)
    await asyncio.to_thread(c.kubectl, "wait", "--for=condition=Ready", f"node/{c.node_name}", "--timeout=120s",
                            timeout=150)
    await asyncio.to_thread(c.kubectl, "wait", "--for=create", "serviceaccount/default", "--timeout=60s", timeout=90)
    try:
        yield c
    finally:
        await asyncio.to_thread(c.kubectl, "delete", "pods", "--all", "--namespace", "default", "--wait=true",
                                "--timeout=120s", timeout=150, check=False)


@pytest.fixture
def busybox_archive(tmp_path: Path) -> Path:
    archive = tmp_path / "busybox.tar"
    build_oci_archive(busybox_image("pyk8s.local/busybox-registry:1.0"), archive)
    return archive


async def _registry(netns: str, root: Path, port: int, users: dict[str, str],
                    listen: str = "127.0.0.1") -> AsyncIterator[Registry]:
    registry = Registry(netns=netns, root=root, port=port, users=users, listen=listen)
    try:
        await asyncio.to_thread(registry.start)
        yield registry
    finally:
        await asyncio.to_thread(registry.stop)


@pytest.fixture
async def public_registry(node_netns: str, tmp_path: Path) -> AsyncIterator[Registry]:
    """No login; on every address of the namespace (loopback and the node's NODE_IP)."""
    async for registry in _registry(node_netns, tmp_path / "public-registry", PUBLIC_PORT, {}, "0.0.0.0"):
        yield registry


@pytest.fixture
async def private_registry(node_netns: str, tmp_path: Path) -> AsyncIterator[Registry]:
    async for registry in _registry(node_netns, tmp_path / "private-registry", PRIVATE_PORT, {USER: PASSWORD}):
        yield registry


def pod(name: str, image: str, policy: str | None = None, pull_secrets: tuple[str, ...] = ()) -> dict:
    container: dict = {"name": "main", "image": image, "command": ["sleep", "3600"]}
    if policy:
        container["imagePullPolicy"] = policy
    spec: dict = {"containers": [container], "terminationGracePeriodSeconds": 1}
    if pull_secrets:
        spec["imagePullSecrets"] = [{"name": secret} for secret in pull_secrets]
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "namespace": "default"}, "spec": spec}


def create(c: NetnsCluster, *objects: dict) -> None:
    c.kubectl("create", "-f", "-", input="\n---\n".join(json.dumps(obj) for obj in objects))


def wait_ready(c: NetnsCluster, name: str) -> dict:
    result = c.kubectl("wait", "--for=condition=Ready", f"pod/{name}", "--timeout=150s", timeout=180, check=False)
    if result.returncode != 0:
        pods = c.kubectl("get", "pods", "-o", "wide", check=False).stdout
        events = c.kubectl("get", "events", "--sort-by=.lastTimestamp", check=False).stdout
        raise AssertionError(f"pod {name} not Ready: {result.stderr}\n{pods}\n{events}\n{c.server_log()}")
    return c.kubectl_json("get", "pod", name)


def events_of(c: NetnsCluster, name: str) -> list[tuple[str, str, str]]:
    listed = c.kubectl_json("get", "events", "--field-selector", f"involvedObject.name={name}")["items"]
    return [(e["type"], e["reason"], e["message"]) for e in listed]


def waiting_of(c: NetnsCluster, name: str) -> dict | None:
    statuses = c.kubectl_json("get", "pod", name)["status"].get("containerStatuses") or []
    return statuses[0]["state"].get("waiting") if statuses else None


def waiting_states(c: NetnsCluster, created: dict, until: str, timeout: int = 120) -> list[tuple[str, str]]:
    """Every (reason, message) the pod's container waits with after its creation (watched from the pod's
    creation resourceVersion, so no state is missed), up to the first `until`."""
    api = CoreV1Api(k8s_config.new_client_from_config(str(c.kubeconfig)))
    seen: list[tuple[str, str]] = []
    stream = watch.Watch()
    for event in stream.stream(api.list_namespaced_pod, "default",
                               field_selector=f"metadata.name={created['metadata']['name']}",
                               resource_version=created["metadata"]["resourceVersion"], timeout_seconds=timeout):
        for status in event["object"].status.container_statuses or []:
            waiting = status.state.waiting
            if waiting is not None and (not seen or seen[-1] != (waiting.reason, waiting.message)):
                seen.append((waiting.reason, waiting.message))
        if seen and seen[-1][0] == until:
            stream.stop()
    return seen


async def test_pull_policies_against_a_registry(cluster: NetnsCluster, public_registry: Registry,
                                                busybox_archive: Path) -> None:
    c = cluster
    pushed: PushedImage = await asyncio.to_thread(public_registry.push_archive, busybox_archive, "busybox", "1.0")
    image = pushed.reference
    assert image == f"127.0.0.1:{PUBLIC_PORT}/busybox:1.0"

    # IfNotPresent on a node without the image: pulled from the registry, then run.
    await asyncio.to_thread(create, c, pod("first", image, "IfNotPresent"))
    status = (await asyncio.to_thread(wait_ready, c, "first"))["status"]["containerStatuses"][0]
    assert status["image"] == image
    assert status["imageID"] == f"127.0.0.1:{PUBLIC_PORT}/busybox@{pushed.digest}"  # the registry's digest
    seen = events_of(c, "first")
    assert ("Normal", "Pulling", f'Pulling image "{image}"') in seen
    pulled = [message for _, reason, message in seen if reason == "Pulled"]
    assert len(pulled) == 1 and pulled[0].startswith(f'Successfully pulled image "{image}" in '), seen
    assert "including waiting). Image size: " in pulled[0] and not pulled[0].endswith("Image size: 0 bytes.")

    # The image is present now: IfNotPresent uses it, Always asks the registry again.
    await asyncio.to_thread(create, c, pod("present", image, "IfNotPresent"), pod("always", image, "Always"))
    await asyncio.to_thread(wait_ready, c, "present")
    await asyncio.to_thread(wait_ready, c, "always")
    assert ("Normal", "Pulled", f'Container image "{image}" already present on machine') in events_of(c, "present")
    assert not [e for e in events_of(c, "present") if e[1] == "Pulling"]
    always = events_of(c, "always")
    assert ("Normal", "Pulling", f'Pulling image "{image}"') in always
    assert any(reason == "Pulled" and message.startswith(f'Successfully pulled image "{image}"')
               for _, reason, message in always), always

    # Never with an image the node does not have: it is not pulled, even though the registry has it.
    absent = f"127.0.0.1:{PUBLIC_PORT}/busybox:absent"
    await asyncio.to_thread(public_registry.push_archive, busybox_archive, "busybox", "absent")
    await asyncio.to_thread(create, c, pod("never", absent, "Never"))
    never_message = f'Container image "{absent}" is not present with pull policy of Never'

    async def never_waits() -> dict | None:
        waiting = waiting_of(c, "never")
        return waiting if waiting and waiting.get("reason") == "ErrImageNeverPull" else None
    waiting = await eventually_async(never_waits, timeout=90, interval=1)
    assert waiting["message"] == never_message
    never_events = events_of(c, "never")
    assert ("Warning", "ErrImageNeverPull", never_message) in never_events
    assert not [e for e in never_events if e[1] == "Pulling"]

    # The pulls reached the registry's content: containerd holds the image under its repo digest.
    async with CRIClient(f"unix://{c.agent_dir / 'containerd' / 'containerd.sock'}") as cri:
        stored = await cri.image_status(image)
        assert stored is not None and f"127.0.0.1:{PUBLIC_PORT}/busybox@{pushed.digest}" in stored.repo_digests
        assert await cri.image_status(absent) is None

        # The same registry at the node's own address is not loopback: containerd speaks HTTPS to it, and the
        # plain-HTTP registry answers that it is not one, until a hosts.toml in the node's certs.d says so.
        insecure = f"{NODE_IP}:{PUBLIC_PORT}/busybox:1.0"
        with pytest.raises(CRIError, match="server gave HTTP response to HTTPS client"):
            await cri.pull_image(insecure)
    hosts_dir = c.agent_dir / "containerd" / "certs.d" / f"{NODE_IP}:{PUBLIC_PORT}"
    hosts_dir.mkdir(parents=True)
    (hosts_dir / "hosts.toml").write_text(f'server = "http://{NODE_IP}:{PUBLIC_PORT}"\n\n'
                                          f'[host."http://{NODE_IP}:{PUBLIC_PORT}"]\n'
                                          '  capabilities = ["pull", "resolve"]\n')
    await asyncio.to_thread(create, c, pod("insecure", insecure))
    status = (await asyncio.to_thread(wait_ready, c, "insecure"))["status"]["containerStatuses"][0]
    assert status["imageID"] == f"{NODE_IP}:{PUBLIC_PORT}/busybox@{pushed.digest}"


async def test_private_registry_needs_a_pull_secret(cluster: NetnsCluster, private_registry: Registry,
                                                    busybox_archive: Path) -> None:
    c = cluster
    pushed = await asyncio.to_thread(private_registry.push_archive, busybox_archive, "private/busybox", "1.0")
    image = pushed.reference
    assert await asyncio.to_thread(private_registry.anonymous_status, "private/busybox", "1.0") == 401
    unauthorized = (f'failed to pull and unpack image "{image}": failed to resolve reference "{image}": pulling '
                    f"from host 127.0.0.1:{PRIVATE_PORT} failed with status code [manifests 1.0]: 401 Unauthorized")

    # No secret: the pull fails with the registry's 401 (ErrImagePull), then backs off (ImagePullBackOff)
    # carrying the same error, as upstream's kubelet reports it.
    created = json.loads(c.kubectl("create", "-o", "json", "-f", "-", input=json.dumps(pod("anonymous", image))).stdout)
    states = await asyncio.to_thread(waiting_states, c, created, "ImagePullBackOff")
    assert ("ErrImagePull", unauthorized) in states, states
    assert states[-1] == ("ImagePullBackOff", f'Back-off pulling image "{image}": ErrImagePull: {unauthorized}')
    anonymous_events = events_of(c, "anonymous")
    assert ("Warning", "Failed", f'Failed to pull image "{image}": {unauthorized}') in anonymous_events
    assert ("Warning", "Failed", "Error: ErrImagePull") in anonymous_events

    async def backoff_events() -> list | None:
        seen = events_of(c, "anonymous")
        wanted = [("Normal", "BackOff", f'Back-off pulling image "{image}"'),
                  ("Warning", "Failed", "Error: ImagePullBackOff")]
        return seen if all(e in seen for e in wanted) else None
    await eventually_async(backoff_events, timeout=60, interval=1)

    # A secret with the wrong password: the registry's 401 again, through the credentials.
    c.kubectl("create", "secret", "docker-registry", "wrong-login", f"--docker-server=127.0.0.1:{PRIVATE_PORT}",
              f"--docker-username={USER}", "--docker-password=not-the-password")
    await asyncio.to_thread(create, c, pod("wrong", image, "Always", ("wrong-login",)))

    async def rejected() -> dict | None:
        waiting = waiting_of(c, "wrong")
        return waiting if waiting and waiting.get("reason") in ("ErrImagePull", "ImagePullBackOff") else None
    waiting = await eventually_async(rejected, timeout=90, interval=1)
    assert waiting["message"].endswith(unauthorized), waiting
    assert ("Warning", "Failed", f'Failed to pull image "{image}": {unauthorized}') in events_of(c, "wrong")

    # The right login, made by kubectl the way users make it: the pod runs the registry's image.
    c.kubectl("create", "secret", "docker-registry", "registry-login", f"--docker-server=127.0.0.1:{PRIVATE_PORT}",
              f"--docker-username={USER}", f"--docker-password={PASSWORD}")
    secret = c.kubectl_json("get", "secret", "registry-login")
    assert secret["type"] == "kubernetes.io/dockerconfigjson"
    await asyncio.to_thread(create, c, pod("authorized", image, "IfNotPresent", ("registry-login",)))
    status = (await asyncio.to_thread(wait_ready, c, "authorized"))["status"]["containerStatuses"][0]
    assert status["imageID"] == f"127.0.0.1:{PRIVATE_PORT}/private/busybox@{pushed.digest}"
    assert ("Normal", "Pulling", f'Pulling image "{image}"') in events_of(c, "authorized")
    assert c.kubectl("exec", "authorized", "--", "echo", "pulled-with-a-secret").stdout == "pulled-with-a-secret\n"
