"""Id sources: where a rule, or a model's actor, finds the user id of a request.

A source is named in YAML rules (``user: header:X-User-Id``) and resolved once,
when the rules are loaded, into a zero-argument callable that reads the
current request. Its value still goes through :func:`~flask_bitmapist.to_user_id`.

``g:``, ``json:`` and ``current_user`` take a dotted path: ``g:user.id`` reads
``g.user.id``, ``current_user.account.id`` reads ``current_user.account.id``,
``json:user.id`` reads ``body["user"]["id"]``. A value missing anywhere along
the path is ``None``, which marks nothing.
"""

from __future__ import annotations

import numbers
import uuid
from collections.abc import Callable, Mapping
from typing import Any

from flask import Request, g, request, session
from flask.sessions import SessionMixin

IdSource = Callable[[], Any]

#: The prefixes whose value the client sends with the request: anyone can
#: mark any id with them. They cannot change while the request runs.
CLIENT_PREFIXES = frozenset({"view_arg", "header", "query", "form", "json"})
#: ``form:`` and ``json:`` read a body only when its Content-Length is
#: declared and at most this: larger or chunked bodies give ``None``.
MAX_SOURCE_BODY_BYTES = 64 * 1024


def _path(spec: str, text: str) -> tuple[str, ...]:
    """The segments of the dotted path ``text`` in the source ``spec``.

    :raises ValueError: for a segment that is not an identifier, or that
        starts with ``__``, which would reach Python's internals
        (``g:user.__class__``) rather than the app's data.
    """
    segments = tuple(text.split("."))
    for segment in segments:
        if not (segment.isascii() and segment.isidentifier()):
            raise ValueError(
                f"id source {spec!r}: path segment {segment!r} must be an identifier"
            )
        if segment.startswith("__"):
            raise ValueError(
                f"id source {spec!r}: path segment {segment!r} must not start with __"
            )
    return segments


def _attributes(value: Any, names: tuple[str, ...]) -> Any:
    """``value.a.b`` for ``names`` ``("a", "b")``; ``None`` once one is missing."""
    for name in names:
        if value is None:
            return None
        value = getattr(value, name, None)
    return value


# The objects behind Flask's proxies: each attribute read through a proxy
# costs about 1.5 us, which a source read per request would pay several
# times. Each proxy's own lookup function, taken once: a call less per read.
_request: Callable[[], Request] = request._get_current_object  # type: ignore[attr-defined,unused-ignore]
_session: Callable[[], SessionMixin] = session._get_current_object  # type: ignore[attr-defined,unused-ignore]
_g: Callable[[], Any] = g._get_current_object  # type: ignore[attr-defined,unused-ignore]


def _keys(value: Any, keys: tuple[str, ...]) -> Any:
    """``value["a"]["b"]`` for ``keys`` ``("a", "b")``; ``None`` once one is
    missing or a value on the way is not a JSON object."""
    for key in keys:
        if not isinstance(value, Mapping):
            return None
        value = value.get(key)
    return value


def _g_source(spec: str, text: str) -> IdSource:
    name, *attributes = _path(spec, text)
    path = tuple(attributes)
    return lambda: _attributes(_g().get(name), path)


def _small_body() -> bool:
    # The body is the client's to make as large as it likes, and a rule may
    # read it where the view never would: only a declared, small body is read.
    length = _request().content_length
    return length is not None and length <= MAX_SOURCE_BODY_BYTES


def _form_source(spec: str, name: str) -> IdSource:
    return lambda: _request().form.get(name) if _small_body() else None


def _json_source(spec: str, text: str) -> IdSource:
    keys = _path(spec, text)
    return lambda: (
        _keys(_request().get_json(silent=True), keys) if _small_body() else None
    )


# Each factory takes the whole spec (for error messages) and what follows the
# colon, and may raise ValueError for a bad path.
PREFIXED_SOURCES: dict[str, Callable[[str, str], IdSource]] = {
    "session": lambda spec, key: lambda: _session().get(key),
    "g": _g_source,
    "view_arg": lambda spec, name: lambda: (_request().view_args or {}).get(name),
    "header": lambda spec, name: lambda: _request().headers.get(name),
    "query": lambda spec, name: lambda: _request().args.get(name),
    "form": _form_source,
    "json": _json_source,
}


def _logged_in_user() -> Any:
    """Flask-Login's ``current_user`` as the object it stands for, or ``None``
    for an anonymous user."""
    from flask_login import current_user

    if not current_user or not current_user.is_authenticated:
        return None
    return current_user._get_current_object()


def current_user_id() -> Any:
    """Flask-Login's ``current_user.get_id()``, or ``None`` for an anonymous user."""
    user = _logged_in_user()
    return None if user is None else user.get_id()


def _current_user_source(path: tuple[str, ...]) -> IdSource:
    return lambda: _attributes(_logged_in_user(), path)


def user_id_of(spec: str, user: Any) -> Any:
    """What the ``current_user`` source ``spec`` gives for ``user``, a
    Flask-Login user object: ``user.get_id()``, or the attributes of the
    path (``current_user.account.id``).

    :raises ValueError: for a path segment that is not an identifier.
    """
    _, dot, path = spec.partition(".")
    if dot:
        return _attributes(user, _path(spec, path))
    return user.get_id()


def uses_current_user(spec: str) -> bool:
    """Whether the id source ``spec`` reads Flask-Login's ``current_user``."""
    return spec == "current_user" or spec.startswith("current_user.")


def client_controlled(spec: str) -> bool:
    """Whether the value of ``spec`` comes from the request the client sends
    (``view_arg``, ``header``, ``query``, ``form``, ``json``): anyone can mark
    any id through such a source."""
    prefix, colon, _ = spec.partition(":")
    return bool(colon) and prefix in CLIENT_PREFIXES


def object_hint(spec: str, value: Any) -> str:
    """A hint for a value of ``spec`` that is an object rather than an id:
    name its id in the path, as in ``g:user.id``; ``""`` when there is none."""
    if value is None or isinstance(value, str | bytes | numbers.Number | uuid.UUID):
        return ""
    if uses_current_user(spec) or spec.startswith("g:"):
        return f' It is an object: name its id attribute, as in "{spec}.id".'
    if spec.startswith("json:"):
        return f' It is not an id: name its id key, as in "{spec}.id".'
    return ""


def resolve_id_source(spec: str, named: Mapping[str, IdSource]) -> IdSource:
    """The callable that reads the id source ``spec`` in a request.

    :param spec: ``current_user``, ``current_user.PATH``, ``session:KEY``,
        ``g:NAME``, ``g:NAME.PATH``, ``view_arg:NAME``, ``header:NAME``,
        ``query:NAME``, ``form:FIELD``, ``json:KEY``, ``json:KEY.PATH``, or a
        name in ``named``. A path is dot-separated identifiers.
    :param named: the sources the app registers by name.
    :raises ValueError: for an unknown source, a path segment that is not an
        identifier or starts with ``__``, or ``current_user`` without
        Flask-Login installed.
    """
    head, dot, path = spec.partition(".")
    if head == "current_user":
        try:
            import flask_login  # noqa: F401
        except ImportError:
            raise ValueError(
                "id source current_user needs Flask-Login: "
                "pip install 'flask-bitmapist[login]'"
            ) from None
        return _current_user_source(_path(spec, path)) if dot else current_user_id
    prefix, colon, name = spec.partition(":")
    if colon and prefix in PREFIXED_SOURCES and name:
        return PREFIXED_SOURCES[prefix](spec, name)
    if not colon and spec in named:
        return named[spec]
    known = ", ".join(sorted(named)) or "none"
    raise ValueError(
        f"unknown id source {spec!r} (the app registers these named sources: {known})"
    )
