"""The errors the volume manager reports; the kubelet turns them into pod events and container states."""

from __future__ import annotations

FAILED_MOUNT = "FailedMount"
# A pod's volumes could not be torn down (a mount is busy); nothing was deleted and a later call retries.
FAILED_UNMOUNT = "FailedUnmount"
# What upstream's kubelet shows in a container's waiting state when its mounts cannot be made (bad subPath, ...).
CREATE_CONTAINER_CONFIG_ERROR = "CreateContainerConfigError"


class VolumeError(Exception):
    """A volume could not be set up: `reason` is the event/state reason, `message` upstream's text."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message


def aggregate(messages: list[str]) -> str:
    """utilerrors.NewAggregate's text: one error as itself, several as a bracketed list."""
    if len(messages) == 1:
        return messages[0]
    return "[" + ", ".join(messages) + "]"
