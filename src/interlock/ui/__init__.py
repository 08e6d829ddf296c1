"""The web dashboard at /ui: server-rendered pages over the `interlock.admin` services.

Templates (Jinja2) render on the server; htmx (vendored in `static/`) posts forms and swaps in the
answer; Chart.js (vendored) draws the charts from JSON endpoints under /ui/api. Sessions, CSRF and
security headers are in `sessions` and `web`; changes go through the admin services, which check the
role and audit each one with the signed-in principal as the actor.
"""

from interlock.ui.dashboard import Dashboard
from interlock.ui.sessions import Session, Sessions

__all__ = ["Dashboard", "Session", "Sessions"]
