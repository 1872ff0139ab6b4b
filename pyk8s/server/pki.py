"""The cluster's certificates: a CA, the apiserver's serving certificate and client certificates.

Everything lives in `<data_dir>/tls/` and is created once: a restart reuses what is there, so
kubeconfigs handed out earlier keep working. The serving certificate is re-issued when the
set of names it must cover changes or it nears expiry; the CA is only replaced when it is
missing or unreadable (which also re-issues everything it signed). Identities follow
kube-apiserver's x509 authenticator: user = subject CN, groups = subject O values.
"""

from __future__ import annotations

import datetime
import ipaddress
import logging
import os
import ssl
import time
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

log = logging.getLogger("pyk8s.pki")

CA_VALIDITY = datetime.timedelta(days=3650)
LEAF_VALIDITY = datetime.timedelta(days=365)
# Leaf certificates this close to expiry are re-issued at startup (k3s renews within 90 days).
RENEW_BEFORE = datetime.timedelta(days=90)
# Tolerate clocks on other machines being a little behind.
BACKDATE = datetime.timedelta(minutes=5)

# Names every apiserver serving certificate covers; callers add the host's names and addresses
# and the ClusterIP of the `kubernetes` Service.
DEFAULT_HOSTNAMES = ("localhost", "kubernetes", "kubernetes.default", "kubernetes.default.svc",
                     "kubernetes.default.svc.cluster.local")
DEFAULT_IPS = ("127.0.0.1", "::1")

ADMIN_USER = "system:admin"
ADMIN_GROUPS = ("system:masters",)
# The identity the apiserver presents to kubelets (kubeadm's name); RBAC binds it to system:kubelet-api-admin.
KUBELET_CLIENT_USER = "kube-apiserver-kubelet-client"

Key = ec.EllipticCurvePrivateKey


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


def _new_key() -> Key:
    return ec.generate_private_key(ec.SECP256R1())


def _key_pem(key: Key) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def _cert_pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def write_atomic(path: Path, data: bytes, mode: int) -> None:
    """Write via a temporary file and rename, so a crash never leaves a torn certificate or key."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, mode)  # the umask may have narrowed or the file may have existed
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def _name(cn: str, organizations: tuple[str, ...] | list[str] = ()) -> x509.Name:
    attrs = [x509.NameAttribute(NameOID.ORGANIZATION_NAME, o) for o in organizations]
    attrs.append(x509.NameAttribute(NameOID.COMMON_NAME, cn))
    return x509.Name(attrs)


def _issue_leaf(ca_cert: x509.Certificate, ca_key: Key, key: Key, subject: x509.Name, *, server: bool,
                sans: list[x509.GeneralName] | None = None) -> x509.Certificate:
    now = _now()
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - BACKDATE)
        .not_valid_after(min(now + LEAF_VALIDITY, ca_cert.not_valid_after_utc))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.KeyUsage(digital_signature=True, content_commitment=False, key_encipherment=False,
                                     data_encipherment=False, key_agreement=False, key_cert_sign=False,
                                     crl_sign=False, encipher_only=False, decipher_only=False), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH if server
                                              else ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
    )
    if sans:
        builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
    return builder.sign(ca_key, hashes.SHA256())


def _new_ca() -> tuple[x509.Certificate, Key]:
    key = _new_key()
    now = _now()
    # A unique CN per CA (as k3s does) keeps clients from confusing a re-created CA with the old one.
    subject = _name(f"pyk8s-server-ca@{int(time.time())}")
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - BACKDATE)
        .not_valid_after(now + CA_VALIDITY)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(x509.KeyUsage(digital_signature=True, content_commitment=False, key_encipherment=False,
                                     data_encipherment=False, key_agreement=False, key_cert_sign=True,
                                     crl_sign=True, encipher_only=False, decipher_only=False), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    return cert, key


def _load_pair(cert_path: Path, key_path: Path) -> tuple[x509.Certificate, Key] | None:
    try:
        cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
        key = serialization.load_pem_private_key(key_path.read_bytes(), password=None)
    except (OSError, ValueError, TypeError):  # missing, corrupt, or an encrypted key
        return None
    if not isinstance(key, ec.EllipticCurvePrivateKey) or key.public_key() != cert.public_key():
        return None
    return cert, key


def _load_key(path: Path) -> Key | None:
    try:
        key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    except (OSError, ValueError, TypeError):
        return None
    return key if isinstance(key, ec.EllipticCurvePrivateKey) else None


def _signed_by(cert: x509.Certificate, ca_cert: x509.Certificate) -> bool:
    try:
        cert.verify_directly_issued_by(ca_cert)
    except (ValueError, TypeError, InvalidSignature):
        return False
    return True


def _sans(hostnames: list[str], ips: list[str]) -> list[x509.GeneralName]:
    names = list(dict.fromkeys([*DEFAULT_HOSTNAMES, *hostnames]))
    addresses = list(dict.fromkeys(ipaddress.ip_address(ip) for ip in [*DEFAULT_IPS, *ips]))
    return [*(x509.DNSName(n) for n in names), *(x509.IPAddress(a) for a in addresses)]


def _cert_sans(cert: x509.Certificate) -> set[x509.GeneralName]:
    try:
        return set(cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value)
    except x509.ExtensionNotFound:
        return set()


def _usable_leaf(pair: tuple[x509.Certificate, Key] | None, ca_cert: x509.Certificate) -> bool:
    return (pair is not None and _signed_by(pair[0], ca_cert)
            and pair[0].not_valid_after_utc - _now() > RENEW_BEFORE)


@dataclass(frozen=True)
class PKI:
    """Paths of the cluster's TLS material, and a way to issue more client certificates."""

    dir: Path
    ca_cert: Path
    ca_key: Path
    serving_cert: Path
    serving_key: Path
    admin_cert: Path
    admin_key: Path
    # Signs service-account tokens (ES256); its public half is published at /openid/v1/jwks.
    service_account_key: Path
    # The apiserver's client certificate towards kubelets (--kubelet-client-certificate/-key).
    kubelet_client_cert: Path
    kubelet_client_key: Path

    @classmethod
    def at(cls, tls_dir: Path) -> PKI:
        return cls(tls_dir, tls_dir / "ca.crt", tls_dir / "ca.key", tls_dir / "serving.crt", tls_dir / "serving.key",
                   tls_dir / "admin.crt", tls_dir / "admin.key", tls_dir / "service-account.key",
                   tls_dir / "kubelet-client.crt", tls_dir / "kubelet-client.key")

    def service_account_signing_key(self) -> Key:
        key = _load_key(self.service_account_key)
        if key is None:
            raise RuntimeError(f"service-account signing key {self.service_account_key} is missing or unreadable")
        return key

    def ca_pem(self) -> bytes:
        return self.ca_cert.read_bytes()

    def issue_client_cert(self, cn: str, groups: list[str]) -> tuple[bytes, bytes]:
        """A fresh key and a client certificate for user `cn` in `groups`, as PEM (cert, key)."""
        pair = _load_pair(self.ca_cert, self.ca_key)
        if pair is None:
            raise RuntimeError(f"cluster CA in {self.dir} is missing or unreadable")
        ca_cert, ca_key = pair
        key = _new_key()
        cert = _issue_leaf(ca_cert, ca_key, key, _name(cn, groups), server=False)
        return _cert_pem(cert), _key_pem(key)

    def issue_serving_cert(self, cn: str, groups: list[str], hostnames: list[str],
                           ips: list[str]) -> tuple[bytes, bytes]:
        """A fresh key and a serving certificate for the given names and addresses (the local node's
        kubelet port, which `pyk8s server` certifies itself, as k3s's server does), as PEM (cert, key)."""
        pair = _load_pair(self.ca_cert, self.ca_key)
        if pair is None:
            raise RuntimeError(f"cluster CA in {self.dir} is missing or unreadable")
        ca_cert, ca_key = pair
        key = _new_key()
        sans = [*(x509.DNSName(n) for n in dict.fromkeys(hostnames)),
                *(x509.IPAddress(ipaddress.ip_address(ip)) for ip in dict.fromkeys(ips))]
        cert = _issue_leaf(ca_cert, ca_key, key, _name(cn, groups), server=True, sans=sans)
        return _cert_pem(cert), _key_pem(key)


def ensure_pki(data_dir: Path, *, hostnames: list[str], ips: list[str]) -> PKI:
    """Create whatever is missing under `<data_dir>/tls/` and return the paths.

    `hostnames` and `ips` are added to the serving certificate's SANs on top of localhost,
    127.0.0.1, ::1 and the kubernetes.default names.
    """
    tls_dir = Path(data_dir) / "tls"
    tls_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    pki = PKI.at(tls_dir)

    ca = _load_pair(pki.ca_cert, pki.ca_key)
    if ca is None:
        log.info("pki: creating cluster CA in %s", tls_dir)
        ca = _new_ca()
        write_atomic(pki.ca_key, _key_pem(ca[1]), 0o600)
        write_atomic(pki.ca_cert, _cert_pem(ca[0]), 0o644)
    ca_cert, ca_key = ca

    sans = _sans(hostnames, ips)
    serving = _load_pair(pki.serving_cert, pki.serving_key)
    if not _usable_leaf(serving, ca_cert) or _cert_sans(serving[0]) != set(sans):
        log.info("pki: issuing apiserver serving certificate for %s",
                 ", ".join(str(getattr(s, "value", s)) for s in sans))
        # Keeping the key across re-issues keeps anything pinned to it working.
        key = serving[1] if serving is not None else _new_key()
        cert = _issue_leaf(ca_cert, ca_key, key, _name("kube-apiserver"), server=True, sans=sans)
        write_atomic(pki.serving_key, _key_pem(key), 0o600)
        write_atomic(pki.serving_cert, _cert_pem(cert), 0o644)

    admin = _load_pair(pki.admin_cert, pki.admin_key)
    if not _usable_leaf(admin, ca_cert):
        log.info("pki: issuing %s client certificate", ADMIN_USER)
        key = _new_key()
        cert = _issue_leaf(ca_cert, ca_key, key, _name(ADMIN_USER, ADMIN_GROUPS), server=False)
        write_atomic(pki.admin_key, _key_pem(key), 0o600)
        write_atomic(pki.admin_cert, _cert_pem(cert), 0o644)

    kubelet_client = _load_pair(pki.kubelet_client_cert, pki.kubelet_client_key)
    if not _usable_leaf(kubelet_client, ca_cert):
        log.info("pki: issuing the apiserver's kubelet client certificate (%s)", KUBELET_CLIENT_USER)
        key = _new_key()
        cert = _issue_leaf(ca_cert, ca_key, key, _name(KUBELET_CLIENT_USER), server=False)
        write_atomic(pki.kubelet_client_key, _key_pem(key), 0o600)
        write_atomic(pki.kubelet_client_cert, _cert_pem(cert), 0o644)

    # Kept across restarts: replacing it would invalidate every service-account token handed out.
    if _load_key(pki.service_account_key) is None:
        log.info("pki: creating the service-account token signing key")
        write_atomic(pki.service_account_key, _key_pem(_new_key()), 0o600)
    return pki


def server_ssl_context(pki: PKI) -> ssl.SSLContext:
    """TLS for the apiserver port: x509 client certificates are asked for but optional, so
    certificate and bearer-token clients share the port. A presented certificate must chain to
    the cluster CA (the handshake fails otherwise)."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.load_cert_chain(pki.serving_cert, pki.serving_key)
    ctx.load_verify_locations(cafile=pki.ca_cert)
    ctx.verify_mode = ssl.CERT_OPTIONAL
    # Only HTTP/1.1 is served; saying so keeps clients from trying h2 (kubectl falls back cleanly).
    ctx.set_alpn_protocols(["http/1.1"])
    return ctx


def client_identity(peercert: dict | None) -> tuple[str, list[str]] | None:
    """(user, groups) from a verified client certificate as `SSLObject.getpeercert()` returns it.

    Like kube-apiserver: the user is the subject's common name (the last one if several) and the
    groups are its organization values in order; a certificate without a CN identifies nobody.
    """
    if not peercert:
        return None
    user = ""
    groups: list[str] = []
    for rdn in peercert.get("subject", ()):
        for attr, value in rdn:
            if attr == "commonName":
                user = value
            elif attr == "organizationName":
                groups.append(value)
    return (user, groups) if user else None
