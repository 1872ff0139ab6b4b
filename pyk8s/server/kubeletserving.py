"""`pyk8s server` approves the kubelet serving certificates its joined nodes ask for.

Upstream approves no kubernetes.io/kubelet-serving requests on its own; k3s sidesteps CSRs and has its
server sign each agent's serving certificate directly. pyk8s keeps the CSR flow (so `kubectl get csr`
shows what was issued, and the controller-manager's signer issues it) and has the server approve what
k3s would sign: a request from a node's own identity (system:node:<name> in system:nodes) for itself,
whose DNS names and IP addresses are among those its Node reports, with kubelet-serving usages.
Anything else stays pending for an administrator (`kubectl certificate approve|deny`).
"""

from __future__ import annotations

import asyncio
import datetime
import ipaddress
import logging

from cryptography import x509
from cryptography.x509.oid import NameOID

from ..api import certificates as csrs
from ..client import APIClient, APIConnectionError, APIStatusError, Informer, is_not_found

log = logging.getLogger("pyk8s.server.kubeletserving")

NODE_USER_PREFIX = "system:node:"
NODES_GROUP = "system:nodes"
SERVING_USAGES = {"digital signature", "key encipherment", "server auth"}
APPROVER = "pyk8s-server"


def approval_problem(csr: dict, node: dict | None) -> str | None:
    """Why the server does not approve this kubelet-serving request (None: approve it)."""
    spec = csr.get("spec") or {}
    username = spec.get("username") or ""
    if not username.startswith(NODE_USER_PREFIX) or NODES_GROUP not in (spec.get("groups") or []):
        return f"requested by {username!r}, not by a node"
    node_name = username.removeprefix(NODE_USER_PREFIX)
    try:
        request = csrs.parse_request(csr)
    except ValueError as exc:
        return f"unreadable request: {exc}"
    common_names = [a.value for a in request.subject.get_attributes_for_oid(NameOID.COMMON_NAME)]
    organizations = [a.value for a in request.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)]
    if common_names != [username] or organizations != [NODES_GROUP]:
        return "the subject is not the requesting node"
    usages = set(spec.get("usages") or [])
    if not usages <= SERVING_USAGES or "server auth" not in usages:
        return f"usages {sorted(usages)} are not a kubelet serving certificate's"
    if node is None:
        return f"node {node_name} does not exist"
    try:
        sans = request.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return "no subject alternative names"
    addresses = (node.get("status") or {}).get("addresses") or []
    known_names = {node_name} | {a.get("address") for a in addresses if a.get("type") in ("Hostname", "InternalDNS",
                                                                                          "ExternalDNS")}
    known_ips = {ipaddress.ip_address(a["address"]) for a in addresses
                 if a.get("type") in ("InternalIP", "ExternalIP") and a.get("address")}
    unknown = [*(n for n in sans.get_values_for_type(x509.DNSName) if n not in known_names),
               *(str(ip) for ip in sans.get_values_for_type(x509.IPAddress) if ip not in known_ips)]
    if unknown:
        return f"names the node does not report: {', '.join(unknown)}"
    if sans.get_values_for_type(x509.RFC822Name) or sans.get_values_for_type(x509.UniformResourceIdentifier):
        return "email and URI names are not allowed"
    return None


class KubeletServingApprover:
    """Watches CertificateSigningRequests and approves the kubelet-serving ones `approval_problem` accepts."""

    def __init__(self, client: APIClient) -> None:
        self.client = client
        self.informer = Informer(client, "certificatesigningrequests")
        self._pending: asyncio.Queue[str] = asyncio.Queue()

    def _enqueue(self, csr: dict) -> None:
        spec = csr.get("spec") or {}
        status = csr.get("status") or {}
        if spec.get("signerName") == csrs.KUBELET_SERVING and not status.get("conditions"):
            self._pending.put_nowait(csr["metadata"]["name"])

    async def run(self) -> None:
        self.informer.add_handler(on_add=self._enqueue, on_update=lambda _old, new: self._enqueue(new))
        self.informer.start()
        try:
            while True:
                name = await self._pending.get()
                try:
                    await self._review(name)
                except (APIStatusError, APIConnectionError) as exc:
                    log.warning("kubelet serving CSR %s: %s; trying again", name, exc)
                    await asyncio.sleep(1)
                    self._pending.put_nowait(name)
        finally:
            await self.informer.stop()

    async def _review(self, name: str) -> None:
        csr = self.informer.get_by_name(name)
        if csr is None or (csr.get("status") or {}).get("conditions"):
            return
        node_name = ((csr.get("spec") or {}).get("username") or "").removeprefix(NODE_USER_PREFIX)
        try:
            node = await self.client.get("nodes", node_name) if node_name else None
        except APIStatusError as exc:
            if not is_not_found(exc):
                raise
            node = None
        problem = approval_problem(csr, node)
        if problem is not None:
            log.info("kubelet serving CSR %s left for an administrator: %s", name, problem)
            return
        now = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        condition = {"type": csrs.APPROVED, "status": "True", "reason": "AutoApproved",
                     "message": f"{APPROVER} approved the serving certificate of node {node_name}: its names and "
                                "addresses are the node's", "lastUpdateTime": now, "lastTransitionTime": now}
        await self.client.update({**csr, "status": {**(csr.get("status") or {}), "conditions": [condition]}},
                                 subresource="approval")
        log.info("kubelet serving CSR %s approved for node %s", name, node_name)
