"""Named Redis systems, the way bitmapist names them, for code outside an app.

Inside an app everything uses the app's own client. Outside one, ``system=``
names a client in a process-wide registry, as in bitmapist: ``init_app``
registers the app's client under ``BITMAPIST_REDIS_SYSTEM``, and
``"default"`` is a client of ``redis://localhost:6379`` unless something
registers another. With the ``bitmapist`` extra installed the registry is
bitmapist's own (``bitmapist.SYSTEMS``), so bitmapist's classes read the same
data; without it, a dictionary of this module.
"""

from __future__ import annotations

import functools
import importlib
from types import ModuleType

import redis

from .client import no_retry

__all__ = [
    "INSTALL_HINT",
    "bitmapist_module",
    "register_system",
    "registry",
    "system_client",
    "track_defaults",
]

INSTALL_HINT = "pip install 'flask-bitmapist[bitmapist]'"

# Used only without bitmapist; like bitmapist.SYSTEMS, shared by the process.
_SYSTEMS: dict[str, redis.Redis] = {}


@functools.cache
def bitmapist_module() -> ModuleType | None:
    """The ``bitmapist`` package, or ``None`` when the extra is not installed."""
    try:
        return importlib.import_module("bitmapist")
    except ImportError:
        return None


def registry() -> dict[str, redis.Redis]:
    """The registry of named systems: ``bitmapist.SYSTEMS`` when bitmapist is
    installed, else this module's own."""
    bitmapist = bitmapist_module()
    if bitmapist is not None:
        systems: dict[str, redis.Redis] = bitmapist.SYSTEMS
        return systems
    return _SYSTEMS


def register_system(name: str, client: redis.Redis) -> None:
    """Register ``client`` as system ``name``.

    With bitmapist installed, bitmapist's classes (``MonthEvents(...,
    system=name)``, ``BitOpAnd``) then read the app's data. The registry is
    one per process, so two apps must use two system names to be told apart
    there.
    """
    registry()[name] = client


def system_client(name: str) -> redis.Redis:
    """The client of system ``name``; ``"default"`` is a client of
    ``redis://localhost:6379`` until another is registered.

    :raises ValueError: for a name that is not a registered system.
    """
    systems = registry()
    client = systems.get(name)
    if client is None and name == "default":
        client = systems.setdefault(name, redis.Redis(retry=no_retry()))
    if client is None:
        raise ValueError(
            f"Unknown system {name!r}; known systems: {', '.join(sorted(systems))}."
        )
    return client


def track_defaults() -> tuple[bool, bool]:
    """Whether marks made outside an app also write the hour and the unique
    key: bitmapist's ``TRACK_HOURLY`` and ``TRACK_UNIQUE`` when installed,
    else neither (bitmapist's defaults)."""
    bitmapist = bitmapist_module()
    if bitmapist is None:
        return False, False
    return bool(bitmapist.TRACK_HOURLY), bool(bitmapist.TRACK_UNIQUE)
