"""The committed CRI stubs match cri.proto, and the client maps gRPC failures to CRIError."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import grpc
import pytest

from pyk8s.kubelet.runtime import cri_pb2
from pyk8s.kubelet.runtime.cri import CRIClient, CRIError, pb

RUNTIME_DIR = Path(cri_pb2.__file__).parent
REPO = RUNTIME_DIR.parent.parent.parent


def _strip_header(text: str) -> str:
    return "".join(line for line in text.splitlines(keepends=True)[3:])


def test_committed_stubs_are_generated_from_cri_proto(tmp_path: Path) -> None:
    pytest.importorskip("grpc_tools")
    proto = "pyk8s/kubelet/runtime/cri.proto"
    subprocess.run([sys.executable, "-m", "grpc_tools.protoc", "-I", str(REPO), f"--python_out={tmp_path}",
                    f"--grpc_python_out={tmp_path}", str(REPO / proto)], check=True, capture_output=True)
    for name in ("cri_pb2.py", "cri_pb2_grpc.py"):
        committed = (RUNTIME_DIR / name).read_text()
        assert committed.startswith("# Generated from pyk8s/kubelet/runtime/cri.proto by scripts/gen_cri_stubs.sh")
        assert _strip_header(committed) == (tmp_path / "pyk8s/kubelet/runtime" / name).read_text(), (
            f"{name} is stale: run scripts/gen_cri_stubs.sh")


def test_services_and_wire_names_are_cri_v1() -> None:
    services = cri_pb2.DESCRIPTOR.services_by_name
    assert services["RuntimeService"].full_name == "runtime.v1.RuntimeService"
    assert services["ImageService"].full_name == "runtime.v1.ImageService"
    assert {"RunPodSandbox", "ExecSync", "ContainerStatus"} <= set(services["RuntimeService"].methods_by_name)
    assert {"PullImage", "ImageFsInfo"} <= set(services["ImageService"].methods_by_name)
    # Field numbers are the wire contract with the runtime.
    status = pb.ContainerStatus.DESCRIPTOR.fields_by_name
    assert (status["exit_code"].number, status["reason"].number, status["image_id"].number) == (7, 10, 17)
    assert pb.ImageSpec.DESCRIPTOR.fields_by_name["user_specified_image"].number == 18


async def test_unreachable_runtime_raises_cri_error(tmp_path: Path) -> None:
    client = CRIClient(str(tmp_path / "absent.sock"))
    try:
        with pytest.raises(CRIError) as caught:
            await client.version(timeout=2)
    finally:
        await client.close()
    assert caught.value.code == grpc.StatusCode.UNAVAILABLE
    assert caught.value.method == "Version"
    assert not caught.value.not_found
