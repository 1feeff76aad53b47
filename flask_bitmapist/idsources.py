"""Id sources: where a rule, or a model's actor, finds the user id of a request.

A source is named in YAML rules (``user: header:X-User-Id``) and resolved once,
when the rules are loaded, into a zero-argument callable that reads the
current request. Its value still goes through :func:`~flask_bitmapist.to_user_id`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from flask import g, request, session

IdSource = Callable[[], Any]

PREFIXED_SOURCES: dict[str, Callable[[str], IdSource]] = {
    "session": lambda key: lambda: session.get(key),
    "g": lambda name: lambda: g.get(name),
    "view_arg": lambda name: lambda: (request.view_args or {}).get(name),
    "header": lambda name: lambda: request.headers.get(name),
    "query": lambda name: lambda: request.args.get(name),
}


def current_user_id() -> Any:
    """Flask-Login's ``current_user.get_id()``, or ``None`` for an anonymous user."""
    from flask_login import current_user

    if not current_user or not current_user.is_authenticated:
        return None
    return current_user.get_id()


def resolve_id_source(spec: str, named: Mapping[str, IdSource]) -> IdSource:
    """The callable that reads the id source ``spec`` in a request.

    :param spec: ``current_user``, ``session:KEY``, ``g:NAME``,
        ``view_arg:NAME``, ``header:NAME``, ``query:NAME``, or a name in
        ``named``.
    :param named: the sources the app registered by name.
    :raises ValueError: for an unknown source, or ``current_user`` without
        Flask-Login installed.
    """
    if spec == "current_user":
        try:
            import flask_login  # noqa: F401
        except ImportError:
            raise ValueError(
                "id source current_user needs Flask-Login: "
                "pip install 'flask-bitmapist[login]'"
            ) from None
        return current_user_id
    prefix, colon, name = spec.partition(":")
    if colon and prefix in PREFIXED_SOURCES and name:
        return PREFIXED_SOURCES[prefix](name)
    if not colon and spec in named:
        return named[spec]
    known = ", ".join(sorted(named)) or "none"
    raise ValueError(
        f"unknown id source {spec!r} (the app registers these named sources: {known})"
    )
