"""The kubelet's streaming endpoints: exec, attach and port-forward over WebSocket and SPDY/3.1.

The kubelet server routes `/exec`, `/attach` and `/portForward` requests here; see remotecommand.py and
portforward.py for the protocols, spdy.py for the SPDY/3.1 implementation.
"""

from pyk8s.kubelet.streaming.dial import Dialer, netns_dialer, tcp_dialer
from pyk8s.kubelet.streaming.portforward import ports_from_query, serve_port_forward
from pyk8s.kubelet.streaming.remotecommand import StreamOptions, serve_attach, serve_exec

__all__ = ["Dialer", "StreamOptions", "netns_dialer", "ports_from_query", "serve_attach", "serve_exec",
           "serve_port_forward", "tcp_dialer"]
