"""The cluster's DNS records, from Services, EndpointSlices and Namespaces (no I/O).

Implements the Kubernetes DNS specification (github.com/kubernetes/dns docs/specification.md) the way
CoreDNS's kubernetes plugin answers it, with `pods insecure`:

- `<svc>.<ns>.svc.<zone>`: A/AAAA of the ClusterIP, or of every ready endpoint of a headless Service
  (every endpoint with `publishNotReadyAddresses`; NXDOMAIN when there is none); CNAME for an
  ExternalName Service;
- `<hostname>.<svc>.<ns>.svc.<zone>` for each ready endpoint of a headless Service (hostname: the
  endpoint's `hostname`, else its address with dashes);
- `_<port>._<proto>.<svc>.<ns>.svc.<zone>` SRV for each named port (priority 0, weights sharing 100);
- PTR for ClusterIPs and headless endpoint addresses; `<a-b-c-d>.<ns>.pod.<zone>` A records;
- `dns-version.<zone>` TXT, the zone's SOA and NS (`ns.dns.<zone>`, the DNS Service's address).

A name that exists without records of the asked type answers NODATA, a name that does not exist
NXDOMAIN; both carry the zone's SOA in the authority section (the server adds it).
"""

from __future__ import annotations

import ipaddress
import time
from collections.abc import Mapping
from dataclasses import dataclass, field

import dns.name
import dns.rcode
import dns.rdata
import dns.rdataclass
import dns.rdatatype
import dns.reversename
import dns.rrset

SCHEMA_VERSION = "1.1.0"
SERVICE_NAME_LABEL = "kubernetes.io/service-name"
SRV_TOTAL_WEIGHT = 100
REVERSE_ZONES = (dns.name.from_text("in-addr.arpa."), dns.name.from_text("ip6.arpa."))


@dataclass
class Answer:
    rcode: int = dns.rcode.NOERROR
    answer: list[dns.rrset.RRset] = field(default_factory=list)
    additional: list[dns.rrset.RRset] = field(default_factory=list)
    # An ExternalName's target outside the cluster zone, for the server to resolve upstream.
    chase: dns.name.Name | None = None


def _dashed(ip: str) -> str:
    return ip.replace(".", "-").replace(":", "-")


def _address_type(ip: str) -> int:
    return dns.rdatatype.A if ipaddress.ip_address(ip).version == 4 else dns.rdatatype.AAAA


def _ready(endpoint: Mapping) -> bool:
    return (endpoint.get("conditions") or {}).get("ready") is not False


Records = dict[tuple[dns.name.Name, int], list[dns.rdata.Rdata]]


class ClusterRecords:
    """Every cluster name, indexed; a change recomputes only the records of the Service it touches.

    Each source of records (a Service with its EndpointSlices, a Namespace, the zone itself) keeps its
    own contribution, so a change costs the size of one Service, not of the cluster.
    """

    def __init__(self, zone: str = "cluster.local", ttl: int = 5, dns_ip: str = ""):
        self.zone = dns.name.from_text(zone.strip(".") + ".")
        self.ttl = ttl
        self.dns_ip = dns_ip
        self.services: dict[tuple[str, str], dict] = {}
        self.endpoint_slices: dict[str, dict] = {}
        self.slices_of: dict[tuple[str, str], dict[str, dict]] = {}  # (namespace, service) → its slices
        self.namespaces: set[str] = set()
        self.serial = int(time.time())
        self._contributions: dict[tuple, tuple[Records, set[dns.name.Name]]] = {}
        self._index: dict[tuple[dns.name.Name, int], dict[tuple, list[dns.rdata.Rdata]]] = {}
        self._name_refs: dict[dns.name.Name, int] = {}
        self._contribute(("zone",), self._zone_records(), {self.zone})

    # ---- state -----------------------------------------------------------------------------

    def set_object(self, kind: str, key: str, obj: dict | None) -> None:
        """Record an added/updated object (`obj`) or a deleted one (`obj` None); kind as the informer's."""
        if kind == "namespaces":
            self._set_namespace(key, obj is not None)
        elif kind == "services":
            namespace, _, name = key.partition("/")
            if obj is None:
                self.services.pop((namespace, name), None)
            else:
                self.services[(namespace, name)] = obj
            self._refresh_service((namespace, name))
        else:
            old = _owner(self.endpoint_slices.pop(key, None))
            if old is not None:
                self.slices_of.get(old, {}).pop(key, None)
            new = _owner(obj)
            if obj is not None:
                self.endpoint_slices[key] = obj
                if new is not None:
                    self.slices_of.setdefault(new, {})[key] = obj
            for service in {old, new} - {None}:
                self._refresh_service(service)
        self.serial = max(self.serial + 1, int(time.time()))

    def soa(self) -> dns.rrset.RRset:
        text = f"ns.dns.{self.zone} hostmaster.{self.zone} {self.serial} 7200 1800 86400 {self.ttl}"
        return dns.rrset.from_text(self.zone, self.ttl, "IN", "SOA", text)

    # ---- contributions -------------------------------------------------------------------------

    def _contribute(self, source: tuple, records: Records, names: set[dns.name.Name]) -> None:
        """Replace what `source` contributes to the index (nothing, when `records` and `names` are empty)."""
        old_records, old_names = self._contributions.pop(source, ({}, set()))
        for key in old_records:
            bucket = self._index.get(key, {})
            bucket.pop(source, None)
            if not bucket:
                self._index.pop(key, None)
        for name in old_names:
            self._name_refs[name] -= 1
            if not self._name_refs[name]:
                del self._name_refs[name]
        names = {ancestor for name in names | {owner for owner, _ in records}
                 for ancestor in _ancestors(name, self.zone)}
        for key, rdatas in records.items():
            self._index.setdefault(key, {})[source] = rdatas
        for name in names:
            self._name_refs[name] = self._name_refs.get(name, 0) + 1
        if records or names:
            self._contributions[source] = (records, names)

    def _set_namespace(self, namespace: str, exists: bool) -> None:
        if exists:
            self.namespaces.add(namespace)
            names = {dns.name.from_text(f"{namespace}.{kind}", self.zone) for kind in ("svc", "pod")}
        else:
            self.namespaces.discard(namespace)
            names = set()
        self._contribute(("namespace", namespace), {}, names)

    def _refresh_service(self, service: tuple[str, str]) -> None:
        obj = self.services.get(service)
        records: Records = {}
        if obj is not None:
            self._service_records(records, service, obj)
        self._contribute(("service", *service), records, set())

    def _zone_records(self) -> Records:
        records: Records = {}
        _add(records, dns.name.from_text("dns-version", self.zone), dns.rdatatype.TXT, f'"{SCHEMA_VERSION}"')
        _add(records, self.zone, dns.rdatatype.NS, f"ns.dns.{self.zone}")
        if self.dns_ip:
            _add(records, dns.name.from_text("ns.dns", self.zone), _address_type(self.dns_ip), self.dns_ip)
        return records

    def _service_records(self, records: Records, service: tuple[str, str], obj: Mapping) -> None:
        namespace, name = service
        spec = obj.get("spec") or {}
        base = dns.name.from_text(f"{name}.{namespace}.svc", self.zone)
        if spec.get("type") == "ExternalName":
            target = (spec.get("externalName") or "").strip(".")
            if target:
                _add(records, base, dns.rdatatype.CNAME, target + ".")
            return
        cluster_ips = [ip for ip in spec.get("clusterIPs") or [spec.get("clusterIP") or ""] if ip]
        if cluster_ips and cluster_ips[0] != "None":
            self._cluster_ip_service(records, base, cluster_ips, spec)
        else:
            self._headless_service(records, base, list(self.slices_of.get(service, {}).values()),
                                   bool(spec.get("publishNotReadyAddresses")))

    @staticmethod
    def _cluster_ip_service(records: Records, base: dns.name.Name, cluster_ips: list[str], spec: Mapping) -> None:
        for ip in cluster_ips:
            try:
                _add(records, base, _address_type(ip), ip)
            except ValueError:
                continue
            _add(records, dns.reversename.from_address(ip), dns.rdatatype.PTR, base.to_text())
        for port in spec.get("ports") or []:
            if port.get("name"):
                _add(records, _srv_name(base, port["name"], port.get("protocol") or "TCP"), dns.rdatatype.SRV,
                     f"0 {SRV_TOTAL_WEIGHT} {port['port']} {base}")

    @staticmethod
    def _headless_service(records: Records, base: dns.name.Name, endpoint_slices: list[dict],
                          publish_not_ready: bool) -> None:
        targets: dict[dns.name.Name, list[tuple[str, int]]] = {}  # SRV owner → (target, port)
        for endpoint_slice in endpoint_slices:
            if endpoint_slice.get("addressType") not in ("IPv4", "IPv6"):
                continue
            for endpoint in endpoint_slice.get("endpoints") or []:
                if not (publish_not_ready or _ready(endpoint)):
                    continue
                for ip in endpoint.get("addresses") or []:
                    try:
                        rdtype = _address_type(ip)
                    except ValueError:
                        continue
                    host = dns.name.from_text(endpoint.get("hostname") or _dashed(ip), base)
                    _add(records, base, rdtype, ip)
                    _add(records, host, rdtype, ip)
                    _add(records, dns.reversename.from_address(ip), dns.rdatatype.PTR, host.to_text())
                    for port in endpoint_slice.get("ports") or []:
                        if port.get("name") and port.get("port") is not None:
                            owner = _srv_name(base, port["name"], port.get("protocol") or "TCP")
                            entry = (host.to_text(), int(port["port"]))
                            if entry not in targets.setdefault(owner, []):
                                targets[owner].append(entry)
        for owner, entries in targets.items():
            weight = SRV_TOTAL_WEIGHT // len(entries)
            for target, port in entries:
                _add(records, owner, dns.rdatatype.SRV, f"0 {weight} {port} {target}")

    def _get(self, name: dns.name.Name, rdtype: int) -> list[dns.rdata.Rdata] | None:
        bucket = self._index.get((name, rdtype))
        if not bucket:
            return None
        if len(bucket) == 1:
            return next(iter(bucket.values()))
        out: list[dns.rdata.Rdata] = []
        for rdatas in bucket.values():
            out += [rdata for rdata in rdatas if rdata not in out]
        return out

    # ---- lookups -------------------------------------------------------------------------------

    def authoritative_for(self, qname: dns.name.Name) -> bool:
        return qname.is_subdomain(self.zone)

    def _rrset(self, qname: dns.name.Name, rdtype: int, rdatas: list[dns.rdata.Rdata]) -> dns.rrset.RRset:
        return dns.rrset.from_rdata_list(qname, self.ttl, rdatas) if rdatas else \
            dns.rrset.RRset(qname, dns.rdataclass.IN, rdtype)

    def lookup(self, qname: dns.name.Name, rdtype: int) -> Answer | None:
        """The answer for a question, or None when the name is not the cluster's (forward it)."""
        key = qname.canonicalize()
        if any(key.is_subdomain(zone) for zone in REVERSE_ZONES):
            ptr = self._get(key, dns.rdatatype.PTR)
            if ptr is None:
                return None  # fall through to the upstream resolvers, as CoreDNS does for in-addr.arpa
            return Answer(answer=[self._rrset(qname, dns.rdatatype.PTR, ptr)] if rdtype in (
                dns.rdatatype.PTR, dns.rdatatype.ANY) else [])
        if not self.authoritative_for(key):
            return None
        pod_ip = self._pod_address(key)
        if pod_ip is not None:
            found_type = _address_type(pod_ip)
            rdata = dns.rdata.from_text(dns.rdataclass.IN, found_type, pod_ip)
            return Answer(answer=[self._rrset(qname, found_type, [rdata])] if rdtype in (found_type,
                                                                                         dns.rdatatype.ANY) else [])
        cname = self._get(key, dns.rdatatype.CNAME)
        if cname is not None and rdtype != dns.rdatatype.CNAME:
            answer = Answer(answer=[self._rrset(qname, dns.rdatatype.CNAME, cname)])
            target = cname[0].target
            if target.is_subdomain(self.zone):
                chased = self.lookup(target, rdtype)
                if chased is not None:
                    answer.answer += chased.answer
            else:
                answer.chase = target
            return answer
        types = (dns.rdatatype.A, dns.rdatatype.AAAA, dns.rdatatype.SRV, dns.rdatatype.TXT, dns.rdatatype.NS,
                 dns.rdatatype.CNAME) if rdtype == dns.rdatatype.ANY else (rdtype,)
        answer = Answer()
        for found_type in types:
            if found_type == dns.rdatatype.SOA and key == self.zone:
                answer.answer.append(self.soa())
            elif (found := self._get(key, found_type)) is not None:
                answer.answer.append(self._rrset(qname, found_type, found))
        if answer.answer:
            for rrset in answer.answer:
                if rrset.rdtype in (dns.rdatatype.SRV, dns.rdatatype.NS):
                    for rdata in rrset:
                        for address_type in (dns.rdatatype.A, dns.rdatatype.AAAA):
                            if (found := self._get(rdata.target, address_type)) is not None:
                                answer.additional.append(self._rrset(rdata.target, address_type, found))
            return answer
        if key not in self._name_refs:
            answer.rcode = dns.rcode.NXDOMAIN
        return answer

    def _pod_address(self, key: dns.name.Name) -> str | None:
        """`a-b-c-d.<ns>.pod.<zone>` in a namespace that exists → a.b.c.d (CoreDNS `pods insecure`)."""
        relative = key.relativize(self.zone).labels
        if len(relative) != 3 or relative[2] != b"pod" or relative[1].decode() not in self.namespaces:
            return None
        text = relative[0].decode()
        for candidate in (text.replace("-", "."), text.replace("-", ":")):
            try:
                return str(ipaddress.ip_address(candidate))
            except ValueError:
                continue
        return None


def _add(records: Records, name: dns.name.Name, rdtype: int, text: str) -> None:
    rdata = dns.rdata.from_text(dns.rdataclass.IN, rdtype, text)
    bucket = records.setdefault((name, rdtype), [])
    if rdata not in bucket:
        bucket.append(rdata)


def _srv_name(base: dns.name.Name, port_name: str, protocol: str) -> dns.name.Name:
    return dns.name.from_text(f"_{port_name}._{protocol.lower()}", base)


def _owner(endpoint_slice: Mapping | None) -> tuple[str, str] | None:
    """(namespace, service) an EndpointSlice belongs to, by its `kubernetes.io/service-name` label."""
    if endpoint_slice is None:
        return None
    meta = endpoint_slice.get("metadata") or {}
    service = (meta.get("labels") or {}).get(SERVICE_NAME_LABEL)
    return (meta.get("namespace") or "", service) if service else None


def _ancestors(name: dns.name.Name, zone: dns.name.Name) -> list[dns.name.Name]:
    """The name and every name between it and the zone: all of them exist (empty non-terminals)."""
    out = []
    while name.is_subdomain(zone):
        out.append(name)
        if name == zone:
            break
        name = name.parent()
    return out
