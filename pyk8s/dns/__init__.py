"""Cluster DNS: the Kubernetes DNS specification served from the API's Services and EndpointSlices.

- `records.py`: the cluster zone's records (pure).
- `forward.py`: other names, from the node's resolvers, with a cache.
- `server.py`: the DNS protocol over UDP and TCP.
- `registration.py`: the `kube-system/kube-dns` Service and this server's endpoint in it.
- `main.py`: `pyk8s dns`, wiring informers, server, registration and /metrics.
"""
