"""Container probes (liveness, readiness, startup) as upstream's kubelet runs them (pkg/kubelet/prober)."""

from .manager import ProbeManager
from .probes import ProbeOutcome, Result

__all__ = ["ProbeManager", "ProbeOutcome", "Result"]
