"""The dashboard blueprint: the overview, event pages (with an event's
lifecycle and stickiness), the cohort heatmap (in its retention modes), the
funnel page, and the pages of the users behind the counts and cells (with a
CSV of all of them).

It is closed (403) unless the app runs in debug or testing mode, or
``BITMAPIST_DASHBOARD_ACCESS`` is a callable that returns True for the
request; a request the browser marks ``Sec-Fetch-Site: cross-site`` gets 403
whatever the access. Every response carries a strict Content-Security-Policy;
the pages load only their own script and stylesheet from the blueprint's
static folder.
"""

from .views import blueprint

__all__ = ["blueprint"]
