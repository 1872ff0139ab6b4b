"""Admission control: built-in plugins run between decoding/defaulting and validation+storage."""

from .chain import ORDERED_PLUGINS, AdmissionChain, AdmissionConfig, build_chain
from .interfaces import CONNECT, CREATE, DELETE, UPDATE, AdmissionPlugin, Attributes
from .priority import SYSTEM_PRIORITY_CLASSES
from .state import ClusterState

__all__ = ["CONNECT", "CREATE", "DELETE", "ORDERED_PLUGINS", "SYSTEM_PRIORITY_CLASSES", "UPDATE", "AdmissionChain",
           "AdmissionConfig", "AdmissionPlugin", "Attributes", "ClusterState", "build_chain"]
