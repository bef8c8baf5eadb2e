"""Watch-fed caches of the operator's objects: reads without requests (see client.py)."""

from .client import Cache, CachedKubeClient, WatchedKind
from .informer import Expired, Informer
from .store import Store

__all__ = ["Cache", "CachedKubeClient", "Expired", "Informer", "Store", "WatchedKind"]
