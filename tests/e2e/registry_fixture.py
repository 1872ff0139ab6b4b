"""A real container registry (Debian's `docker-registry`, distribution v2) inside a test's network namespace.

The registry listens on 127.0.0.1:<port> *inside* the namespace, so a containerd started in the same namespace
pulls from it over loopback and nothing leaves the test's namespace. The test process (in the host namespace)
pushes images through a `NetnsForwarder` (host 127.0.0.1 → the registry inside the namespace) with the
registry HTTP API v2: blob uploads, then a manifest PUT. With `users`, the registry requires HTTP basic auth
checked against a bcrypt htpasswd file (made by `htpasswd -B` from apache2-utils).

Everything lives under `root` (config, htpasswd, storage); `stop()` ends the registry by PID and removes it.
"""

from __future__ import annotations

import base64
import http.client
import json
import os
import shutil
import signal
import subprocess
import tarfile
import time
import urllib.parse
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from conftest import NetnsForwarder

REGISTRY_BINARY = "docker-registry"
HTPASSWD_BINARY = "htpasswd"
MEDIA_OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"


class RegistryError(Exception):
    """The registry did not start or refused a push."""


@dataclass(frozen=True)
class PushedImage:
    reference: str  # what a pod names: 127.0.0.1:<port>/<repository>:<tag>
    digest: str  # the manifest digest the registry serves (containerd's repo digest)


@dataclass
class Registry:
    netns: str
    root: Path
    port: int = 5000
    users: dict[str, str] = field(default_factory=dict)
    # The address it listens on inside the namespace; "0.0.0.0" also serves the namespace's other addresses.
    listen: str = "127.0.0.1"
    process: subprocess.Popen | None = None
    forwarder: NetnsForwarder | None = None

    @property
    def host(self) -> str:
        """The registry's address as image references spell it (inside the namespace)."""
        return f"127.0.0.1:{self.port}"

    @property
    def log_path(self) -> Path:
        return self.root / "registry.log"

    def log_tail(self, size: int = 3000) -> str:
        return self.log_path.read_text(errors="replace")[-size:] if self.log_path.exists() else ""

    def _write_config(self) -> Path:
        config: dict = {
            "version": 0.1,
            "log": {"level": "info", "accesslog": {"disabled": True}},
            "storage": {"filesystem": {"rootdirectory": str(self.root / "storage")}, "delete": {"enabled": True}},
            "http": {"addr": f"{self.listen}:{self.port}", "secret": os.urandom(16).hex()},
        }
        if self.users:
            config["auth"] = {"htpasswd": {"realm": "pyk8s-e2e", "path": str(self._write_htpasswd())}}
        path = self.root / "config.yml"
        path.write_text(yaml.safe_dump(config))
        return path

    def _write_htpasswd(self) -> Path:
        # distribution's htpasswd auth accepts bcrypt entries only.
        if shutil.which(HTPASSWD_BINARY) is None:
            raise RegistryError("htpasswd not found: install apache2-utils (scripts/install.sh --test)")
        lines = []
        for user, password in self.users.items():
            made = subprocess.run([HTPASSWD_BINARY, "-nbB", user, password], capture_output=True, text=True,
                                  check=True, timeout=60)
            lines.append(made.stdout.strip())
        path = self.root / "htpasswd"
        path.write_text("\n".join(lines) + "\n")
        return path

    def start(self, timeout: float = 60) -> None:
        if shutil.which(REGISTRY_BINARY) is None:
            raise RegistryError("docker-registry not found: install it (scripts/install.sh --test)")
        self.root.mkdir(parents=True, exist_ok=True)
        config = self._write_config()
        # nsenter switches only the network namespace and execs the registry: the PID we hold is the registry's.
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(
                ["nsenter", f"--net=/var/run/netns/{self.netns}", REGISTRY_BINARY, "serve", str(config)],
                stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        self.forwarder = NetnsForwarder(self.netns, ("127.0.0.1", self.port))
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RegistryError(f"docker-registry exited ({self.process.returncode}):\n{self.log_tail()}")
            try:
                status, _, _ = self._request("GET", "/v2/")
            except OSError:
                status = 0
            if status in (200, 401):  # 401: up, and asking for credentials
                return
            time.sleep(0.1)
        raise RegistryError(f"docker-registry did not answer in {timeout}s:\n{self.log_tail()}")

    def stop(self) -> None:
        process, self.process = self.process, None
        if process is not None and process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=30)
        if self.forwarder is not None:
            self.forwarder.close()
            self.forwarder = None
        shutil.rmtree(self.root, ignore_errors=True)

    # ---- registry HTTP API v2 ---------------------------------------------------------------------------

    def _request(self, method: str, target: str, body: bytes = b"", headers: dict[str, str] | None = None,
                 credentials: tuple[str, str] | None = None) -> tuple[int, dict[str, str], bytes]:
        assert self.forwarder is not None
        connection = http.client.HTTPConnection("127.0.0.1", self.forwarder.port, timeout=60)
        sent = dict(headers or {})
        if credentials is not None:
            sent["Authorization"] = "Basic " + base64.b64encode(":".join(credentials).encode()).decode()
        try:
            connection.request(method, target, body=body, headers=sent)
            response = connection.getresponse()
            return response.status, {k.lower(): v for k, v in response.getheaders()}, response.read()
        finally:
            connection.close()

    def _credentials(self) -> tuple[str, str] | None:
        return next(iter(self.users.items())) if self.users else None

    def _push_blob(self, repository: str, digest: str, data: bytes) -> None:
        credentials = self._credentials()
        status, _, _ = self._request("HEAD", f"/v2/{repository}/blobs/{digest}", credentials=credentials)
        if status == 200:
            return
        status, headers, text = self._request("POST", f"/v2/{repository}/blobs/uploads/", credentials=credentials)
        if status != 202:
            raise RegistryError(f"starting an upload to {repository}: {status} {text[:300]!r}")
        # Location may be absolute (built from our Host header) or a path; our connection goes to the forwarder.
        location = urllib.parse.urlsplit(headers["location"])
        query = f"{location.query}&" if location.query else ""
        target = f"{location.path}?{query}digest={urllib.parse.quote(digest)}"
        status, _, text = self._request("PUT", target, body=data, credentials=credentials,
                                        headers={"Content-Type": "application/octet-stream"})
        if status != 201:
            raise RegistryError(f"uploading {digest} to {repository}: {status} {text[:300]!r}")

    def push_archive(self, archive: Path, repository: str, tag: str) -> PushedImage:
        """Push the one image of an OCI image layout archive (what `build_oci_archive` writes) as repository:tag."""
        with tarfile.open(archive) as tar:
            def blob(digest: str) -> bytes:
                member = tar.extractfile(f"blobs/sha256/{digest.removeprefix('sha256:')}")
                assert member is not None, digest
                return member.read()

            index_file = tar.extractfile("index.json")
            assert index_file is not None
            index = json.loads(index_file.read())
            manifest_digest = index["manifests"][0]["digest"]
            manifest_bytes = blob(manifest_digest)
            manifest = json.loads(manifest_bytes)
            for descriptor in [manifest["config"], *manifest["layers"]]:
                self._push_blob(repository, descriptor["digest"], blob(descriptor["digest"]))
        status, headers, text = self._request(
            "PUT", f"/v2/{repository}/manifests/{tag}", body=manifest_bytes, credentials=self._credentials(),
            headers={"Content-Type": manifest.get("mediaType", MEDIA_OCI_MANIFEST)})
        if status != 201:
            raise RegistryError(f"putting manifest {repository}:{tag}: {status} {text[:300]!r}")
        served = headers.get("docker-content-digest", manifest_digest)
        assert served == manifest_digest, (served, manifest_digest)
        return PushedImage(reference=f"{self.host}/{repository}:{tag}", digest=served)

    def anonymous_status(self, repository: str, tag: str) -> int:
        """The status an unauthenticated manifest request gets (401 when the registry is private)."""
        status, _, _ = self._request("HEAD", f"/v2/{repository}/manifests/{tag}",
                                     headers={"Accept": MEDIA_OCI_MANIFEST})
        return status
