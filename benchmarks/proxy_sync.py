"""Service proxy sync cost: render the nftables ruleset for N Services × M endpoints and apply it.

For N Services (ClusterIP + NodePort) with M endpoints each it measures the pure render, a full sync
(`nft -f` of the whole table) and a partial sync after one endpoint changes (the diff, then `nft -f`
of it). `nft` runs inside a network namespace this benchmark creates and deletes (the host's namespace
is never touched). Needs root; prints JSON lines.

    python benchmarks/proxy_sync.py --services 1000 --endpoints 2 --repeat 5
"""

from __future__ import annotations

import argparse
import asyncio
import secrets
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.harness import emit  # noqa: E402
from pyk8s.proxy.proxier import NftApplier  # noqa: E402
from pyk8s.proxy.render import ProxyConfig, render, script  # noqa: E402


def objects(services: int, endpoints: int, changed: int = -1) -> tuple[list[dict], list[dict]]:
    svcs, slices = [], []
    for i in range(services):
        name = f"svc-{i}"
        svcs.append({"metadata": {"namespace": "bench", "name": name},
                     "spec": {"type": "NodePort", "clusterIP": f"10.43.{i // 250}.{i % 250 + 1}",
                              "ports": [{"name": "http", "port": 80, "protocol": "TCP", "nodePort": 30000 + i}]}})
        eps = [{"addresses": [f"10.42.{(i * endpoints + j) // 250}.{(i * endpoints + j) % 250 + 1}"],
                "conditions": {"ready": not (i == changed and j == 0)}, "nodeName": "node-1"}
               for j in range(endpoints)]
        slices.append({"metadata": {"namespace": "bench", "name": f"{name}-x",
                                    "labels": {"kubernetes.io/service-name": name}},
                       "addressType": "IPv4", "endpoints": eps,
                       "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}]})
    return svcs, slices


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--services", type=int, default=1000)
    parser.add_argument("--endpoints", type=int, default=2)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    config = ProxyConfig(node_name="node-1", cluster_cidr="10.42.0.0/16", service_cidr="10.43.0.0/16",
                         node_port_ips=("192.168.0.2",))
    svcs, slices = objects(args.services, args.endpoints)
    changed_svcs, changed_slices = objects(args.services, args.endpoints, changed=args.services // 2)
    netns = f"pyk8s-bench-{secrets.token_hex(4)}"
    subprocess.run(["ip", "netns", "add", netns], check=True)
    try:
        applier = NftApplier(("ip", "netns", "exec", netns))
        renders, fulls, diffs, partials, partial_sizes = [], [], [], [], []
        for _ in range(args.repeat):
            started = time.perf_counter()
            desired = render(svcs, slices, config)
            renders.append(time.perf_counter() - started)
            started = time.perf_counter()
            await applier.apply(script(desired, None))
            fulls.append(time.perf_counter() - started)
            after = render(changed_svcs, changed_slices, config)
            started = time.perf_counter()
            text = script(after, desired)
            diffs.append(time.perf_counter() - started)
            started = time.perf_counter()
            await applier.apply(text)
            partials.append(time.perf_counter() - started)
            partial_sizes.append(len(text.splitlines()))
        emit(benchmark="proxy_sync", services=args.services, endpoints=args.endpoints, chains=len(desired.chains),
             render_ms=round(statistics.median(renders) * 1000, 1),
             full_sync_ms=round(statistics.median(fulls) * 1000, 1),
             diff_ms=round(statistics.median(diffs) * 1000, 1),
             partial_apply_ms=round(statistics.median(partials) * 1000, 1),
             partial_sync_lines=partial_sizes[0])
    finally:
        subprocess.run(["ip", "netns", "delete", netns], check=False)


if __name__ == "__main__":
    asyncio.run(main())
