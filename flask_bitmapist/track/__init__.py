"""Sources of marks: explicit marking, YAML rules and their middleware, login
and model signals, and bulk imports. Each turns "something happened" into a
:class:`~flask_bitmapist.store.writer.Mark` and hands it to the app's writer."""
