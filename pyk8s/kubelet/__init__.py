"""pyk8s.kubelet: the node agent. `simulated` holds kwok-style simulated nodes; `node_status` builds
the Node and Lease objects a kubelet registers and reports."""
