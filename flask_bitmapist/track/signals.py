"""flask-bitmapist's blinker signals.

Subscribe like Flask's own signals, for one app or for all::

    from flask_bitmapist.track.signals import event_marked

    @event_marked.connect_via(app)
    def audit(sender, event_name, user_id, when, **extra):
        ...

Signals and their arguments (the sender is always the app):

``model_created``, ``model_updated``, ``model_deleted``
    Sent after a commit, once per committed change of a
    :class:`~flask_bitmapist.Bitmapistable` instance: ``instance``, the
    object (expired by the commit, and detached for deletions: read its
    identity with ``sqlalchemy.inspect(instance).identity`` rather than
    attributes, which would load them again).

``event_marked``
    Sent for every mark that went through the app's writer, from any source:
    ``event_name`` (str), ``user_id`` (int) and ``when`` (the aware UTC
    datetime of the mark). In sync mode it is sent once the mark is written,
    and not for a write that failed. In background mode it is sent once the
    mark is queued, before it is written: not for marks dropped by a full
    queue, and a queued mark can still be lost later (a batch Redis refuses,
    or exit). Receivers run on the thread that made the mark, usually the
    request's, so keep them quick.
"""

from __future__ import annotations

from blinker import Namespace

_signals = Namespace()

#: A committed insert of a ``Bitmapistable`` model: sender app, ``instance``.
model_created = _signals.signal("model-created")
#: A committed change of a mapped column: sender app, ``instance``.
model_updated = _signals.signal("model-updated")
#: A committed delete: sender app, ``instance``.
model_deleted = _signals.signal("model-deleted")
#: Every mark that went through the writer (written in sync mode, queued in
#: background mode): sender app, ``event_name``, ``user_id``, ``when``.
event_marked = _signals.signal("event-marked")
