"""pyk8s.scheduler: the kube-scheduler.

- `resources` (requests/allocatable arithmetic), `cache` (NodeInfo, SchedulerCache with assume),
- `plugins` (filter and score plugins), `framework` (one decision, FitError messages),
- `queue` (SchedulingQueue), `scheduler` (informers, the loop, binding, `run_scheduler`).
"""

from .cache import NodeInfo, SchedulerCache
from .framework import FitError, Framework, ScheduleResult
from .queue import QueuedPod, SchedulingQueue
from .scheduler import Scheduler, run_scheduler

__all__ = ["NodeInfo", "SchedulerCache", "FitError", "Framework", "ScheduleResult", "QueuedPod", "SchedulingQueue",
           "Scheduler", "run_scheduler"]
