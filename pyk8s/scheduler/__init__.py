"""pyk8s.scheduler: the kube-scheduler.

- `resources` (requests/allocatable arithmetic), `cache` (NodeInfo, SchedulerCache with assume),
- `plugins/` (one module per plugin, plus the registry), `framework` (one decision, FitError messages),
- `preemption` (DefaultPreemption's choice of node and victims), `config` (KubeSchedulerConfiguration and
  profiles), `listers` (namespaces, owners, PDBs),
- `queue` (SchedulingQueue), `scheduler` (informers, the loop, binding, preemption's writes, `run_scheduler`).
"""

from .cache import NodeInfo, SchedulerCache
from .config import ConfigError, SchedulerConfig, load_config
from .framework import FitError, Framework, ScheduleResult
from .queue import QueuedPod, SchedulingQueue
from .scheduler import Scheduler, run_scheduler

__all__ = ["NodeInfo", "SchedulerCache", "ConfigError", "SchedulerConfig", "load_config", "FitError", "Framework",
           "ScheduleResult", "QueuedPod", "SchedulingQueue", "Scheduler", "run_scheduler"]
