"""Cluster DNS cost: loading N Services into the records, one change, and queries per second.

Queries per second are measured over UDP on loopback: the server (the real `DNSServer` under uvloop)
runs in a child process, the client keeps a window of queries in flight from this one. Prints JSON lines.

    python benchmarks/cluster_dns.py --services 1000 --queries 20000
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import socket
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import dns.message  # noqa: E402
import dns.name  # noqa: E402
import dns.rdatatype  # noqa: E402
import uvloop  # noqa: E402

from benchmarks.harness import emit  # noqa: E402
from pyk8s.dns.records import ClusterRecords  # noqa: E402
from pyk8s.dns.server import DNSHandler, DNSServer  # noqa: E402

WINDOW = 16


def services(count: int) -> list[dict]:
    return [{"metadata": {"namespace": "bench", "name": f"svc-{i}"},
             "spec": {"clusterIP": f"10.43.{i // 250}.{i % 250 + 1}",
                      "ports": [{"name": "http", "port": 80, "protocol": "TCP"}]}} for i in range(count)]


def load(count: int) -> ClusterRecords:
    records = ClusterRecords()
    records.set_object("namespaces", "bench", {})
    for svc in services(count):
        records.set_object("services", f"bench/{svc['metadata']['name']}", svc)
    return records


def serve(count: int, ready, port_value) -> None:
    async def main() -> None:
        server = DNSServer(DNSHandler(load(count), None), "127.0.0.1", 0)
        await server.start()
        port_value.value = server.port
        ready.set()
        while True:
            await asyncio.sleep(3600)

    uvloop.run(main())


def query_rate(port: int, count: int, queries: int) -> float:
    wires = [dns.message.make_query(f"svc-{i % count}.bench.svc.cluster.local", "A", id=i % 65536).to_wire()
             for i in range(queries)]
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.settimeout(5)
    sock.connect(("127.0.0.1", port))
    started = time.perf_counter()
    sent = received = 0
    while received < queries:
        while sent < queries and sent - received < WINDOW:
            sock.send(wires[sent])
            sent += 1
        sock.recv(4096)
        received += 1
    return queries / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--services", type=int, default=1000)
    parser.add_argument("--queries", type=int, default=20000)
    args = parser.parse_args()

    started = time.perf_counter()
    records = load(args.services)
    load_ms = (time.perf_counter() - started) * 1000
    svc = services(1)[0]
    started = time.perf_counter()
    records.set_object("services", "bench/svc-0", svc)
    change_ms = (time.perf_counter() - started) * 1000
    names = [dns.name.from_text(f"svc-{i}.bench.svc.cluster.local.") for i in range(args.services)]
    started = time.perf_counter()
    for name in names * 5:
        records.lookup(name, dns.rdatatype.A)
    lookups = 5 * len(names) / (time.perf_counter() - started)

    ready, port = multiprocessing.Event(), multiprocessing.Value("i", 0)
    child = multiprocessing.Process(target=serve, args=(args.services, ready, port), daemon=True)
    child.start()
    try:
        if not ready.wait(120):
            raise RuntimeError("the DNS server did not start")
        qps = query_rate(port.value, args.services, args.queries)
    finally:
        child.terminate()
        child.join(10)
    emit(benchmark="cluster_dns", services=args.services, load_all_ms=round(load_ms, 1),
         one_change_ms=round(change_ms, 2), lookups_per_s=round(lookups), udp_queries_per_s=round(qps))


if __name__ == "__main__":
    main()
