#!/usr/bin/env bash
# Regenerate pyk8s/kubelet/runtime/cri_pb2.py and cri_pb2_grpc.py from cri.proto (our own subset of CRI v1).
# Needs grpcio-tools (a test extra): .venv/bin/pip install -e ".[test]"
set -euo pipefail
cd "$(dirname "$0")/.."
py=${PYTHON:-.venv/bin/python}
out=pyk8s/kubelet/runtime
"$py" -m grpc_tools.protoc -I . --python_out=. --grpc_python_out=. "$out/cri.proto"
tools_version=$("$py" -c 'import importlib.metadata as m; print(m.version("grpcio-tools"))')
for f in "$out/cri_pb2.py" "$out/cri_pb2_grpc.py"; do
  { echo "# Generated from pyk8s/kubelet/runtime/cri.proto by scripts/gen_cri_stubs.sh (grpcio-tools $tools_version)."
    echo "# Do not edit: change cri.proto and rerun the script."
    echo "# ruff: noqa"
    cat "$f"; } > "$f.tmp"
  mv "$f.tmp" "$f"
done
