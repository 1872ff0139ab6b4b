"""Where the apiserver is and how to prove who we are: kubeconfig files and in-cluster config.

Rate-limit defaults: client-go's own default is 5 QPS / burst 10 and kube-controller-manager
raises it to 20/30; pyk8s components default to 50 QPS / burst 100 because a Python control
plane runs many controllers in few processes over one client, and the work queues' own
backoff already bounds retry storms. Every component can lower or raise it.
"""

from __future__ import annotations

import base64
import importlib.metadata
import logging
import os
import ssl
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import yaml

log = logging.getLogger("pyk8s.client.config")

DEFAULT_QPS = 50.0
DEFAULT_BURST = 100
try:
    _PYK8S_VERSION = importlib.metadata.version("pyk8s")
except importlib.metadata.PackageNotFoundError:  # running from a source tree
    _PYK8S_VERSION = "0.0.0"
SERVICE_ACCOUNT_DIR = Path("/var/run/secrets/kubernetes.io/serviceaccount")
# client-go re-reads a projected token file about once a minute, since the kubelet rotates it.
TOKEN_REFRESH_SECONDS = 60.0


class ConfigError(Exception):
    """The kubeconfig or in-cluster environment cannot produce a usable client config."""


class TokenFile:
    """A bearer token read from a file and re-read when older than `refresh` seconds.

    A failed re-read keeps the last good token (the file is replaced atomically by the
    kubelet, but a transient error must not log every request out).
    """

    def __init__(self, path: str | Path, refresh: float = TOKEN_REFRESH_SECONDS):
        self.path = Path(path)
        self.refresh = refresh
        self._token: str | None = None
        self._read_at = float("-inf")

    def token(self) -> str:
        now = time.monotonic()
        if self._token is None or now - self._read_at >= self.refresh:
            try:
                self._token = self.path.read_text(encoding="utf-8").strip()
                self._read_at = now
            except OSError as exc:
                if self._token is None:
                    raise ConfigError(f"cannot read token file {self.path}: {exc}") from exc
                log.warning("re-reading token file %s failed, keeping the previous token: %s", self.path, exc)
                self._read_at = now
        return self._token


@dataclass
class ClientConfig:
    server: str
    ca_data: bytes | None = None  # PEM
    ca_file: str | None = None
    cert_data: bytes | None = None  # PEM client certificate
    cert_file: str | None = None
    key_data: bytes | None = None
    key_file: str | None = None
    token: str | None = None
    token_file: str | None = None
    username: str | None = None
    password: str | None = None
    insecure_skip_tls_verify: bool = False
    tls_server_name: str | None = None
    namespace: str = "default"  # the context's namespace; used by callers that need a default
    qps: float = DEFAULT_QPS  # <= 0: no client-side throttling
    burst: int = DEFAULT_BURST
    user_agent: str = f"pyk8s/{_PYK8S_VERSION} (python) client"
    timeout: float | None = None  # whole-request limit for non-watch calls; None: no limit (as client-go)
    _token_source: TokenFile | None = field(default=None, init=False, repr=False, compare=False)

    # ---- construction ------------------------------------------------------------------

    @classmethod
    def from_kubeconfig(cls, path: str | Path | None = None, context: str | None = None) -> ClientConfig:
        """Load a kubeconfig: explicit path, else $KUBECONFIG (first existing entry), else ~/.kube/config."""
        path = Path(path) if path is not None else _default_kubeconfig_path()
        try:
            doc = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        except OSError as exc:
            raise ConfigError(f"cannot read kubeconfig {path}: {exc}") from exc
        base = path.parent
        context_name = context or doc.get("current-context")
        if not context_name:
            raise ConfigError(f"kubeconfig {path} has no current-context and none was given")
        ctx = _named(doc.get("contexts"), context_name, "context", path)
        cluster = _named(doc.get("clusters"), ctx.get("cluster"), "cluster", path)
        user = _named(doc.get("users"), ctx.get("user"), "user", path) if ctx.get("user") else {}
        if user.get("exec") or user.get("auth-provider"):
            raise ConfigError(f"kubeconfig {path}: exec and auth-provider credentials are not supported")
        server = cluster.get("server")
        if not server:
            raise ConfigError(f"kubeconfig {path}: cluster {ctx.get('cluster')!r} has no server")
        config = cls(
            server=server.rstrip("/"),
            ca_data=_b64(cluster.get("certificate-authority-data")),
            ca_file=_resolve(base, cluster.get("certificate-authority")),
            cert_data=_b64(user.get("client-certificate-data")),
            cert_file=_resolve(base, user.get("client-certificate")),
            key_data=_b64(user.get("client-key-data")),
            key_file=_resolve(base, user.get("client-key")),
            token=user.get("token") or None,
            token_file=_resolve(base, user.get("tokenFile")),
            username=user.get("username") or None,
            password=user.get("password") or None,
            insecure_skip_tls_verify=bool(cluster.get("insecure-skip-tls-verify", False)),
            tls_server_name=cluster.get("tls-server-name") or None,
            namespace=ctx.get("namespace") or "default",
        )
        return config

    @classmethod
    def in_cluster(cls, sa_dir: str | Path = SERVICE_ACCOUNT_DIR, environ: dict[str, str] | None = None) \
            -> ClientConfig:
        """The pod's service account: KUBERNETES_SERVICE_HOST/PORT plus the mounted token, CA and namespace."""
        env = os.environ if environ is None else environ
        host, port = env.get("KUBERNETES_SERVICE_HOST"), env.get("KUBERNETES_SERVICE_PORT")
        if not host or not port:
            raise ConfigError("not running in a cluster: KUBERNETES_SERVICE_HOST and KUBERNETES_SERVICE_PORT "
                              "must be defined")
        sa_dir = Path(sa_dir)
        token_path = sa_dir / "token"
        if not token_path.exists():
            raise ConfigError(f"in-cluster token file {token_path} does not exist")
        host = f"[{host}]" if ":" in host and not host.startswith("[") else host  # IPv6 literal
        ca_path = sa_dir / "ca.crt"
        try:
            namespace = (sa_dir / "namespace").read_text(encoding="utf-8").strip() or "default"
        except OSError:
            namespace = "default"
        return cls(server=f"https://{host}:{port}", ca_file=str(ca_path) if ca_path.exists() else None,
                   token_file=str(token_path), namespace=namespace)

    @classmethod
    def load(cls, kubeconfig: str | Path | None = None, context: str | None = None) -> ClientConfig:
        """The usual lookup order: explicit kubeconfig, $KUBECONFIG / ~/.kube/config, then in-cluster."""
        if kubeconfig is not None:
            return cls.from_kubeconfig(kubeconfig, context)
        try:
            path = _default_kubeconfig_path()
        except ConfigError:
            return cls.in_cluster()
        return cls.from_kubeconfig(path, context)

    # ---- use ---------------------------------------------------------------------------

    def bearer_token(self) -> str | None:
        if self.token:
            return self.token
        if self.token_file:
            if self._token_source is None or str(self._token_source.path) != self.token_file:
                self._token_source = TokenFile(self.token_file)
            return self._token_source.token()
        return None

    def auth_header(self) -> str | None:
        token = self.bearer_token()
        if token:
            return f"Bearer {token}"
        if self.username is not None and self.password is not None:
            raw = f"{self.username}:{self.password}".encode()
            return "Basic " + base64.b64encode(raw).decode("ascii")
        return None

    def ssl_context(self) -> ssl.SSLContext | None:
        """TLS settings for https servers (None for plain http)."""
        if not self.server.startswith("https://"):
            return None
        ctx = ssl.create_default_context(ssl.Purpose.SERVER_AUTH)
        if self.insecure_skip_tls_verify:
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
        elif self.ca_data or self.ca_file:
            # A cluster CA replaces the system roots, as client-go does.
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
            ctx.load_verify_locations(cafile=self.ca_file, cadata=self.ca_data.decode() if self.ca_data else None)
        if self.cert_data or self.cert_file:
            _load_client_cert(ctx, self)
        return ctx


def _default_kubeconfig_path() -> Path:
    env = os.environ.get("KUBECONFIG", "")
    for entry in env.split(os.pathsep):
        if entry and Path(entry).exists():
            return Path(entry)
    home = Path.home() / ".kube" / "config"
    if home.exists():
        return home
    raise ConfigError("no kubeconfig found ($KUBECONFIG, ~/.kube/config)")


def _named(entries: list | None, name: str | None, what: str, path: Path) -> dict:
    for entry in entries or []:
        if entry.get("name") == name:
            return entry.get(what) or {}
    raise ConfigError(f"kubeconfig {path}: {what} {name!r} not found")


def _b64(value: str | None) -> bytes | None:
    return base64.b64decode(value) if value else None


def _resolve(base: Path, value: str | None) -> str | None:
    """kubeconfig file references are relative to the kubeconfig's own directory."""
    if not value:
        return None
    path = Path(value).expanduser()
    return str(path if path.is_absolute() else base / path)


def _load_client_cert(ctx: ssl.SSLContext, config: ClientConfig) -> None:
    # ssl only loads certificates from files; embedded *-data go through private temp files
    # that are removed as soon as they are loaded.
    if config.cert_file and not config.cert_data and (config.key_file or not config.key_data):
        ctx.load_cert_chain(config.cert_file, config.key_file)
        return
    cert = config.cert_data or Path(config.cert_file).read_bytes()  # type: ignore[arg-type]
    key = config.key_data or (Path(config.key_file).read_bytes() if config.key_file else b"")
    with tempfile.TemporaryDirectory(prefix="pyk8s-tls-") as tmp:
        cert_path, key_path = Path(tmp) / "tls.crt", Path(tmp) / "tls.key"
        for path, data in ((cert_path, cert), (key_path, key)):
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
        ctx.load_cert_chain(str(cert_path), str(key_path) if key else None)
