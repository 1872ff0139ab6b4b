"""An asyncio CRI v1 client (grpc.aio) for containerd or any other CRI runtime.

One method per CRI call the kubelet makes. Requests and responses are the protobuf messages generated from
our own `cri.proto` (module `cri_pb2`, re-exported here as `pb`), so callers build configs with the real
field names. gRPC failures become `CRIError` with the gRPC status code kept, so callers can tell
"not found" from "runtime down".
"""

from __future__ import annotations

import grpc
import grpc.aio

from pyk8s.kubelet.runtime import cri_pb2 as pb
from pyk8s.kubelet.runtime import cri_pb2_grpc as pb_grpc

__all__ = ["CRIClient", "CRIError", "pb"]

CRI_API_VERSION = "v1"
DEFAULT_TIMEOUT = 60.0
# containerd caps exec output at 16 MiB per stream; leave room for the envelope.
MAX_MESSAGE_BYTES = 40 * 1024 * 1024


class CRIError(Exception):
    """A CRI call failed; `code` is the grpc.StatusCode (NOT_FOUND, UNAVAILABLE, DEADLINE_EXCEEDED, ...)."""

    def __init__(self, method: str, code: grpc.StatusCode, details: str) -> None:
        super().__init__(f"CRI {method}: {code.name}: {details}")
        self.method = method
        self.code = code
        self.details = details

    @property
    def not_found(self) -> bool:
        return self.code == grpc.StatusCode.NOT_FOUND


def _target(endpoint: str) -> str:
    # Kubelet flags spell unix sockets unix:///path; gRPC wants unix:/path or unix:///path (both fine),
    # and a bare path is taken as a socket path like the kubelet does.
    if endpoint.startswith("/"):
        return f"unix://{endpoint}"
    return endpoint


class CRIClient:
    def __init__(self, endpoint: str, timeout: float = DEFAULT_TIMEOUT) -> None:
        self.endpoint = endpoint
        self.timeout = timeout
        self._channel = grpc.aio.insecure_channel(_target(endpoint), options=[
            ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
            ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
        ])
        self._runtime = pb_grpc.RuntimeServiceStub(self._channel)
        self._images = pb_grpc.ImageServiceStub(self._channel)

    async def close(self) -> None:
        await self._channel.close()

    async def __aenter__(self) -> CRIClient:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    async def _call(self, stub: object, method: str, request: object, timeout: float | None):
        try:
            return await getattr(stub, method)(request, timeout=timeout or self.timeout)
        except grpc.aio.AioRpcError as exc:
            raise CRIError(method, exc.code(), exc.details() or "") from None

    # ---- runtime ----

    async def version(self, timeout: float | None = None) -> pb.VersionResponse:
        return await self._call(self._runtime, "Version", pb.VersionRequest(version=CRI_API_VERSION), timeout)

    async def run_pod_sandbox(self, config: pb.PodSandboxConfig, runtime_handler: str = "",
                              timeout: float | None = None) -> str:
        response = await self._call(self._runtime, "RunPodSandbox",
                                    pb.RunPodSandboxRequest(config=config, runtime_handler=runtime_handler), timeout)
        return response.pod_sandbox_id

    async def stop_pod_sandbox(self, sandbox_id: str, timeout: float | None = None) -> None:
        await self._call(self._runtime, "StopPodSandbox", pb.StopPodSandboxRequest(pod_sandbox_id=sandbox_id), timeout)

    async def remove_pod_sandbox(self, sandbox_id: str, timeout: float | None = None) -> None:
        await self._call(self._runtime, "RemovePodSandbox", pb.RemovePodSandboxRequest(pod_sandbox_id=sandbox_id),
                         timeout)

    async def pod_sandbox_status(self, sandbox_id: str, verbose: bool = False,
                                 timeout: float | None = None) -> pb.PodSandboxStatusResponse:
        return await self._call(self._runtime, "PodSandboxStatus",
                                pb.PodSandboxStatusRequest(pod_sandbox_id=sandbox_id, verbose=verbose), timeout)

    async def list_pod_sandbox(self, filter: pb.PodSandboxFilter | None = None,
                               timeout: float | None = None) -> list[pb.PodSandbox]:
        response = await self._call(self._runtime, "ListPodSandbox", pb.ListPodSandboxRequest(filter=filter), timeout)
        return list(response.items)

    async def create_container(self, sandbox_id: str, config: pb.ContainerConfig, sandbox_config: pb.PodSandboxConfig,
                               timeout: float | None = None) -> str:
        request = pb.CreateContainerRequest(pod_sandbox_id=sandbox_id, config=config, sandbox_config=sandbox_config)
        response = await self._call(self._runtime, "CreateContainer", request, timeout)
        return response.container_id

    async def start_container(self, container_id: str, timeout: float | None = None) -> None:
        await self._call(self._runtime, "StartContainer", pb.StartContainerRequest(container_id=container_id), timeout)

    async def stop_container(self, container_id: str, grace_seconds: int = 0, timeout: float | None = None) -> None:
        """Stop with SIGTERM (or the image's STOPSIGNAL), SIGKILL after `grace_seconds`."""
        request = pb.StopContainerRequest(container_id=container_id, timeout=grace_seconds)
        # The RPC itself must outlive the grace period.
        await self._call(self._runtime, "StopContainer", request, timeout or (self.timeout + grace_seconds))

    async def remove_container(self, container_id: str, timeout: float | None = None) -> None:
        await self._call(self._runtime, "RemoveContainer", pb.RemoveContainerRequest(container_id=container_id),
                         timeout)

    async def container_status(self, container_id: str, verbose: bool = False,
                               timeout: float | None = None) -> pb.ContainerStatusResponse:
        return await self._call(self._runtime, "ContainerStatus",
                                pb.ContainerStatusRequest(container_id=container_id, verbose=verbose), timeout)

    async def list_containers(self, filter: pb.ContainerFilter | None = None,
                              timeout: float | None = None) -> list[pb.Container]:
        response = await self._call(self._runtime, "ListContainers", pb.ListContainersRequest(filter=filter), timeout)
        return list(response.containers)

    async def exec_sync(self, container_id: str, cmd: list[str], timeout_seconds: int = 0,
                        timeout: float | None = None) -> pb.ExecSyncResponse:
        """Run `cmd` in the container and wait; `timeout_seconds` is enforced by the runtime (0 = none)."""
        request = pb.ExecSyncRequest(container_id=container_id, cmd=cmd, timeout=timeout_seconds)
        rpc_timeout = timeout or (self.timeout + timeout_seconds if timeout_seconds else None)
        return await self._call(self._runtime, "ExecSync", request, rpc_timeout)

    async def update_container_resources(self, container_id: str, linux: pb.LinuxContainerResources,
                                         annotations: dict[str, str] | None = None,
                                         timeout: float | None = None) -> None:
        request = pb.UpdateContainerResourcesRequest(container_id=container_id, linux=linux,
                                                     annotations=annotations or {})
        await self._call(self._runtime, "UpdateContainerResources", request, timeout)

    async def reopen_container_log(self, container_id: str, timeout: float | None = None) -> None:
        """Ask the runtime to reopen the container's log file (after the kubelet rotated it)."""
        await self._call(self._runtime, "ReopenContainerLog", pb.ReopenContainerLogRequest(container_id=container_id),
                         timeout)

    # ---- streaming: each call answers with a one-time URL on the runtime's streaming server ----

    async def exec(self, container_id: str, cmd: list[str], *, stdin: bool = False, stdout: bool = True,
                   stderr: bool = True, tty: bool = False, timeout: float | None = None) -> str:
        request = pb.ExecRequest(container_id=container_id, cmd=cmd, tty=tty, stdin=stdin, stdout=stdout,
                                 stderr=stderr and not tty)
        return (await self._call(self._runtime, "Exec", request, timeout)).url

    async def attach(self, container_id: str, *, stdin: bool = False, stdout: bool = True, stderr: bool = True,
                     tty: bool = False, timeout: float | None = None) -> str:
        request = pb.AttachRequest(container_id=container_id, stdin=stdin, tty=tty, stdout=stdout,
                                   stderr=stderr and not tty)
        return (await self._call(self._runtime, "Attach", request, timeout)).url

    async def port_forward(self, sandbox_id: str, ports: list[int] | None = None, timeout: float | None = None) -> str:
        request = pb.PortForwardRequest(pod_sandbox_id=sandbox_id, port=ports or [])
        return (await self._call(self._runtime, "PortForward", request, timeout)).url

    # ---- runtime status and stats ----

    async def status(self, verbose: bool = False, timeout: float | None = None) -> pb.StatusResponse:
        return await self._call(self._runtime, "Status", pb.StatusRequest(verbose=verbose), timeout)

    async def container_stats(self, container_id: str, timeout: float | None = None) -> pb.ContainerStats:
        response = await self._call(self._runtime, "ContainerStats",
                                    pb.ContainerStatsRequest(container_id=container_id), timeout)
        return response.stats

    async def list_container_stats(self, filter: pb.ContainerStatsFilter | None = None,
                                   timeout: float | None = None) -> list[pb.ContainerStats]:
        response = await self._call(self._runtime, "ListContainerStats", pb.ListContainerStatsRequest(filter=filter),
                                    timeout)
        return list(response.stats)

    # ---- images ----

    async def pull_image(self, image: str, auth: pb.AuthConfig | None = None,
                         sandbox_config: pb.PodSandboxConfig | None = None, timeout: float | None = None) -> str:
        request = pb.PullImageRequest(image=pb.ImageSpec(image=image), auth=auth, sandbox_config=sandbox_config)
        response = await self._call(self._images, "PullImage", request, timeout)
        return response.image_ref

    async def image_status(self, image: str, verbose: bool = False, timeout: float | None = None) -> pb.Image | None:
        """The image, or None when the runtime does not have it."""
        response = await self._call(self._images, "ImageStatus",
                                    pb.ImageStatusRequest(image=pb.ImageSpec(image=image), verbose=verbose), timeout)
        return response.image if response.HasField("image") else None

    async def list_images(self, image: str = "", timeout: float | None = None) -> list[pb.Image]:
        request = pb.ListImagesRequest(filter=pb.ImageFilter(image=pb.ImageSpec(image=image)) if image else None)
        response = await self._call(self._images, "ListImages", request, timeout)
        return list(response.images)

    async def remove_image(self, image: str, timeout: float | None = None) -> None:
        await self._call(self._images, "RemoveImage", pb.RemoveImageRequest(image=pb.ImageSpec(image=image)), timeout)

    async def image_fs_info(self, timeout: float | None = None) -> pb.ImageFsInfoResponse:
        return await self._call(self._images, "ImageFsInfo", pb.ImageFsInfoRequest(), timeout)
