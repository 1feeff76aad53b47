"""Named Redis systems, the way bitmapist names them, for code outside an app.

Inside an app everything uses the app's own client. Outside one, ``system=``
names a client as in bitmapist. With the ``bitmapist`` extra installed, the
names are bitmapist's process-wide registry (``bitmapist.SYSTEMS``): ``init_app``
registers the app's client there, so bitmapist's own classes read the same
data. Without it the only name is ``"default"``: a client of
``redis://localhost:6379``, bitmapist's own default.
"""

from __future__ import annotations

import functools
from types import ModuleType

import redis

__all__ = ["bitmapist_module", "register_system", "system_client", "track_defaults"]

INSTALL_HINT = "pip install 'flask-bitmapist[bitmapist]'"


@functools.cache
def bitmapist_module() -> ModuleType | None:
    """The ``bitmapist`` package, or ``None`` when the extra is not installed."""
    try:
        import bitmapist
    except ImportError:
        return None
    return bitmapist


def register_system(name: str, client: redis.Redis) -> None:
    """Register ``client`` as bitmapist system ``name``, when bitmapist is
    installed.

    bitmapist's classes (``MonthEvents(..., system=name)``, ``BitOpAnd``) then
    read the app's data. bitmapist keeps systems in one process-wide
    dictionary, so two apps must use two system names to be told apart there.
    """
    bitmapist = bitmapist_module()
    if bitmapist is not None:
        bitmapist.SYSTEMS[name] = client


def system_client(name: str) -> redis.Redis:
    """The client of system ``name``.

    :raises ValueError: for a name that is not a known system.
    """
    bitmapist = bitmapist_module()
    if bitmapist is not None:
        try:
            client: redis.Redis = bitmapist.get_redis(name)
        except KeyError:
            raise ValueError(
                f"Unknown bitmapist system {name!r}; known systems: "
                f"{', '.join(sorted(bitmapist.SYSTEMS))}."
            ) from None
        return client
    if name == "default":
        return _default_client()
    raise ValueError(
        f"Unknown system {name!r}: outside its app, a system other than "
        f"'default' is found in bitmapist's registry ({INSTALL_HINT})."
    )


@functools.cache
def _default_client() -> redis.Redis:
    # bitmapist's "default" system: one client, and so one connection pool,
    # for every mark made outside an app.
    return redis.Redis()


def track_defaults() -> tuple[bool, bool]:
    """Whether marks made outside an app also write the hour and the unique
    key: bitmapist's ``TRACK_HOURLY`` and ``TRACK_UNIQUE`` when installed,
    else neither (bitmapist's defaults)."""
    bitmapist = bitmapist_module()
    if bitmapist is None:
        return False, False
    return bool(bitmapist.TRACK_HOURLY), bool(bitmapist.TRACK_UNIQUE)
