"""Names outside the cluster: ask the node's resolvers (from /etc/resolv.conf), with a small cache.

Like CoreDNS's `forward . /etc/resolv.conf` plus `cache 30`: resolvers are tried in order, over UDP
and again over TCP when the answer was truncated; answers are cached for their smallest TTL but at
most `max_ttl` seconds, negative answers for the SOA's minimum (same cap); failures are not cached.
"""

from __future__ import annotations

import logging
import time
from collections import OrderedDict
from pathlib import Path

import dns.asyncquery
import dns.exception
import dns.flags
import dns.message
import dns.rcode
import dns.rdatatype

log = logging.getLogger("pyk8s.dns.forward")

DEFAULT_RESOLV_CONF = Path("/etc/resolv.conf")


def resolvers_from(path: Path = DEFAULT_RESOLV_CONF) -> list[tuple[str, int]]:
    """The `nameserver` lines of a resolv.conf, as (address, 53)."""
    try:
        lines = path.read_text().splitlines()
    except OSError:
        return []
    out = []
    for line in lines:
        fields = line.split()
        if len(fields) >= 2 and fields[0] == "nameserver":
            out.append((fields[1].split("%", 1)[0], 53))
    return out


class Forwarder:
    def __init__(self, upstreams: list[tuple[str, int]], *, timeout: float = 2.0, max_ttl: int = 30,
                 cache_size: int = 10_000):
        self.upstreams = upstreams
        self.timeout = timeout
        self.max_ttl = max_ttl
        self.cache_size = cache_size
        self._cache: OrderedDict[tuple, tuple[float, dns.message.Message]] = OrderedDict()
        self.cache_hits = 0
        self.cache_misses = 0

    def _ttl(self, response: dns.message.Message) -> int:
        if response.rcode() == dns.rcode.NOERROR and response.answer:
            return min(self.max_ttl, *(rrset.ttl for rrset in response.answer))
        soa = [rrset for rrset in response.authority if rrset.rdtype == dns.rdatatype.SOA]
        if soa:
            return min(self.max_ttl, soa[0].ttl, soa[0][0].minimum)
        return min(self.max_ttl, 5)

    async def _ask(self, query: dns.message.Message) -> dns.message.Message:
        last: Exception | None = None
        for host, port in self.upstreams:
            try:
                response = await dns.asyncquery.udp(query, host, timeout=self.timeout, port=port)
                if response.flags & dns.flags.TC:
                    response = await dns.asyncquery.tcp(query, host, timeout=self.timeout, port=port)
                return response
            except (dns.exception.DNSException, OSError) as exc:
                log.debug("dns: upstream %s:%d failed for %s: %s", host, port, query.question[0].name, exc)
                last = exc
        raise ConnectionError(f"no upstream resolver answered: {last}")

    async def resolve(self, qname, rdtype: int, rdclass: int = 1, *, dnssec: bool = False) -> dns.message.Message:
        """The upstream response for one question (from the cache while it is fresh)."""
        key = (qname.canonicalize(), rdtype, rdclass, dnssec)
        cached = self._cache.get(key)
        now = time.monotonic()
        if cached is not None and cached[0] > now:
            self._cache.move_to_end(key)
            self.cache_hits += 1
            return _aged(cached[1], int(cached[0] - now))
        self.cache_misses += 1
        query = dns.message.make_query(qname, rdtype, rdclass, use_edns=0, want_dnssec=dnssec, payload=1232)
        response = await self._ask(query)
        if response.rcode() in (dns.rcode.NOERROR, dns.rcode.NXDOMAIN):
            ttl = self._ttl(response)
            if ttl > 0:
                self._cache[key] = (now + ttl, response)
                if len(self._cache) > self.cache_size:
                    self._cache.popitem(last=False)
                return _aged(response, ttl)
        return response


def _aged(response: dns.message.Message, remaining: int) -> dns.message.Message:
    """A cached response with its TTLs lowered to what is left of its cache lifetime."""
    copy = dns.message.from_wire(response.to_wire())
    for section in (copy.answer, copy.authority, copy.additional):
        for rrset in section:
            rrset.ttl = min(rrset.ttl, max(remaining, 0))
    return copy
