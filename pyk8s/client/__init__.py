"""pyk8s.client: the async API client library every pyk8s component is written against.

- `ClientConfig` (config.py): kubeconfig / in-cluster credentials, QPS and burst.
- `APIClient` (api.py): CRUD, patch, subresources, list paging and watch over aiohttp.
- `Informer`, `SharedInformerFactory` (informer.py): list+watch caches with indexers and handlers.
- `WorkQueue`, `Controller` (workqueue.py): de-duplicating rate-limited queue and worker loop.
- `LeaderElector` (leaderelection.py): Lease-based leader election.
- `EventRecorder` (events.py): core/v1 Events with upstream's aggregation and spam filtering.
"""

from .api import (
    APIClient,
    APIConnectionError,
    APIStatusError,
    Resource,
    WatchStream,
    is_already_exists,
    is_conflict,
    is_gone,
    is_not_found,
    resolve,
)
from .config import ClientConfig, ConfigError
from .events import NORMAL, WARNING, EventCorrelator, EventRecorder
from .informer import DeletedFinalStateUnknown, Indexer, Informer, SharedInformerFactory, object_key, split_key
from .leaderelection import LeaderElector
from .workqueue import (
    REAL_CLOCK,
    Clock,
    Controller,
    FakeClock,
    RequeueAfter,
    ShutDown,
    TokenBucket,
    WorkQueue,
    default_controller_rate_limiter,
)

__all__ = [
    "APIClient", "APIConnectionError", "APIStatusError", "Resource", "WatchStream", "is_already_exists",
    "is_conflict", "is_gone", "is_not_found", "resolve", "ClientConfig", "ConfigError", "NORMAL", "WARNING",
    "EventCorrelator", "EventRecorder", "DeletedFinalStateUnknown", "Indexer", "Informer", "SharedInformerFactory",
    "object_key", "split_key", "LeaderElector", "REAL_CLOCK", "Clock", "Controller", "FakeClock", "RequeueAfter",
    "ShutDown", "TokenBucket", "WorkQueue", "default_controller_rate_limiter",
]
