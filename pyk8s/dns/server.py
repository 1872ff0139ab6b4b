"""The DNS protocol side: answer one query message, over UDP and over TCP (asyncio).

Cluster names come from `ClusterRecords` (authoritative, TTL 5 s, the zone's SOA in the authority
section of NXDOMAIN and NODATA answers); everything else goes to the `Forwarder`. UDP answers that
do not fit the client's buffer (512 bytes, or its EDNS payload size) are sent truncated (TC) so the
client retries over TCP.
"""

from __future__ import annotations

import asyncio
import logging
import struct

import dns.exception
import dns.flags
import dns.message
import dns.opcode
import dns.rcode
import dns.rdataclass
import dns.rdatatype

from .forward import Forwarder
from .records import ClusterRecords

log = logging.getLogger("pyk8s.dns")

OUR_EDNS_PAYLOAD = 1232
TCP_IDLE_TIMEOUT = 10.0


class DNSHandler:
    def __init__(self, records: ClusterRecords, forwarder: Forwarder | None):
        self.records = records
        self.forwarder = forwarder
        self.queries = 0
        self.cluster_synced = True  # False while the API caches fill: cluster names then get SERVFAIL

    async def handle(self, wire: bytes, max_size: int | None) -> bytes | None:
        """The response to one query (None for something that is not a query at all)."""
        try:
            query = dns.message.from_wire(wire)
        except dns.message.ShortHeader:
            return None
        except dns.exception.DNSException:
            return _format_error(wire)
        if query.flags & dns.flags.QR:
            return None
        self.queries += 1
        response = await self.respond(query)
        limit = 65535 if max_size is None else max(512, min(query.payload if query.edns >= 0 else 512, max_size))
        try:
            return response.to_wire(max_size=limit)
        except dns.exception.TooBig:
            truncated = dns.message.make_response(query, our_payload=OUR_EDNS_PAYLOAD)
            truncated.flags |= dns.flags.TC | (response.flags & dns.flags.AA)
            return truncated.to_wire(max_size=limit)

    async def respond(self, query: dns.message.Message) -> dns.message.Message:
        response = dns.message.make_response(query, recursion_available=True, our_payload=OUR_EDNS_PAYLOAD)
        if query.opcode() != dns.opcode.QUERY or len(query.question) != 1:
            response.set_rcode(dns.rcode.NOTIMP if query.opcode() != dns.opcode.QUERY else dns.rcode.FORMERR)
            return response
        question = query.question[0]
        if question.rdclass != dns.rdataclass.IN:
            response.set_rcode(dns.rcode.REFUSED)
            return response
        answer = self.records.lookup(question.name, question.rdtype)
        if answer is None:
            return await self._forward(query, response)
        if not self.cluster_synced:
            response.set_rcode(dns.rcode.SERVFAIL)
            return response
        response.flags |= dns.flags.AA
        response.set_rcode(answer.rcode)
        response.answer = answer.answer
        response.additional = answer.additional
        if answer.chase is not None and self.forwarder is not None:
            try:
                chased = await self.forwarder.resolve(answer.chase, question.rdtype)
                response.answer += chased.answer
            except ConnectionError as exc:
                log.debug("dns: could not resolve the ExternalName target %s: %s", answer.chase, exc)
        if not response.answer:
            response.authority = [self.records.soa()]
        return response

    async def _forward(self, query: dns.message.Message, response: dns.message.Message) -> dns.message.Message:
        question = query.question[0]
        if self.forwarder is None or not self.forwarder.upstreams:
            response.set_rcode(dns.rcode.REFUSED)
            return response
        try:
            upstream = await self.forwarder.resolve(question.name, question.rdtype, question.rdclass,
                                                    dnssec=query.want_dnssec())
        except ConnectionError as exc:
            log.info("dns: forwarding %s %s failed: %s", question.name, dns.rdatatype.to_text(question.rdtype), exc)
            response.set_rcode(dns.rcode.SERVFAIL)
            return response
        response.set_rcode(upstream.rcode())
        response.answer, response.authority = upstream.answer, upstream.authority
        response.additional = [rrset for rrset in upstream.additional if rrset.rdtype != dns.rdatatype.OPT]
        response.flags |= upstream.flags & dns.flags.AD
        return response


def _format_error(wire: bytes) -> bytes | None:
    """FORMERR with the query's id, for a message whose header parsed but whose body did not."""
    if len(wire) < 12:
        return None
    query_id, flags = struct.unpack("!HH", wire[:4])
    if flags & 0x8000:
        return None
    return struct.pack("!HHHHHH", query_id, 0x8000 | (flags & 0x7900) | dns.rcode.FORMERR, 0, 0, 0, 0)


class _UDPProtocol(asyncio.DatagramProtocol):
    def __init__(self, handler: DNSHandler):
        self.handler = handler
        self.transport: asyncio.DatagramTransport | None = None
        self.tasks: set[asyncio.Task] = set()

    def connection_made(self, transport) -> None:
        self.transport = transport

    def datagram_received(self, data: bytes, addr) -> None:
        task = asyncio.get_running_loop().create_task(self._answer(data, addr))
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def _answer(self, data: bytes, addr) -> None:
        try:
            reply = await self.handler.handle(data, max_size=OUR_EDNS_PAYLOAD)
        except Exception:
            log.exception("dns: failed to answer a UDP query from %s", addr)
            return
        if reply is not None and self.transport is not None:
            self.transport.sendto(reply, addr)


async def _serve_tcp(handler: DNSHandler, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while True:
            async with asyncio.timeout(TCP_IDLE_TIMEOUT):
                header = await reader.readexactly(2)
                wire = await reader.readexactly(struct.unpack("!H", header)[0])
            reply = await handler.handle(wire, max_size=None)
            if reply is None:
                break
            writer.write(struct.pack("!H", len(reply)) + reply)
            await writer.drain()
    except (asyncio.IncompleteReadError, TimeoutError, ConnectionError):
        pass
    except Exception:
        log.exception("dns: failed to answer a TCP query")
    finally:
        writer.close()


class DNSServer:
    """UDP and TCP listeners on one address; `start` binds both, `port` is the one bound."""

    def __init__(self, handler: DNSHandler, host: str, port: int):
        self.handler = handler
        self.host = host
        self.port = port
        self._udp: asyncio.DatagramTransport | None = None
        self._tcp: asyncio.Server | None = None

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        self._tcp = await asyncio.start_server(lambda r, w: _serve_tcp(self.handler, r, w), self.host, self.port,
                                               reuse_address=True)
        self.port = self._tcp.sockets[0].getsockname()[1]  # a port of 0 picks one: UDP takes the same
        self._udp, _ = await loop.create_datagram_endpoint(lambda: _UDPProtocol(self.handler),
                                                           local_addr=(self.host, self.port))
        log.info("dns: serving on %s:%d (UDP and TCP)", self.host, self.port)

    async def stop(self) -> None:
        if self._udp is not None:
            self._udp.close()
        if self._tcp is not None:
            self._tcp.close()
            await self._tcp.wait_closed()
