"""Pod volumes on a real node: emptyDir, configMap, secret, downwardAPI, projected (with service-account
tokens), hostPath and persistentVolumeClaim (hostPath/local PVs), and the mounts the runtime makes for them."""

from .errors import CREATE_CONTAINER_CONFIG_ERROR, FAILED_MOUNT, FAILED_UNMOUNT, VolumeError
from .manager import EmptyDirLimitExceeded, VolumeManager

__all__ = ["CREATE_CONTAINER_CONFIG_ERROR", "FAILED_MOUNT", "FAILED_UNMOUNT", "EmptyDirLimitExceeded", "VolumeError",
           "VolumeManager"]
