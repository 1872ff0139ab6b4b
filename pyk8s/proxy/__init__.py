"""The service proxy: Services and EndpointSlices → one nftables table per node (kube-proxy's nftables mode).

- `servicemodel.py`: the proxy's view of Services and EndpointSlices (pure).
- `render.py`: the desired ruleset and the `nft -f` transaction that installs it (pure).
- `runner.py`: the bounded-frequency runner that rate-limits syncs.
- `proxier.py`: informers → render → `nft`, and the routes that make service IPs local.
- `healthcheck.py`: the healthCheckNodePort listeners of `externalTrafficPolicy: Local` load balancers.
- `server.py`: `pyk8s proxy`, with /healthz.
"""
