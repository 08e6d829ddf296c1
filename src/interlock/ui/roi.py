"""ROI: outcomes per task type, team or key, what they cost in AI and the manual work they replaced.

The figures are `interlock spend --roi`'s and `GET /admin/roi`'s (`admin.outcomes.roi_report`).
"""

from __future__ import annotations

import time

from pydantic import BaseModel, Field
from starlette.requests import Request
from starlette.responses import Response

from interlock.admin import RoiQuery, roi_report
from interlock.admin.outcomes import RoiGroup
from interlock.ui.web import parse, render, viewer


class RoiFilter(BaseModel):
    """The ROI page's query: the grouping and a window in days (none: every outcome)."""

    group: RoiGroup = "task_type"
    days: int | None = Field(default=None, ge=1, le=3660)


async def roi_page(request: Request) -> Response:
    """GET /ui/roi?group=task_type|team|key&days=N."""
    view = await viewer(request)
    wanted = parse(RoiFilter, {k: v for k, v in request.query_params.items() if v})
    since = time.time() - wanted.days * 86400 if wanted.days else None
    report = await roi_report(view.ctx, view.principal, RoiQuery(group=wanted.group, since=since))
    tasks = view.settings.roi.task_types
    return render(request, "roi.html", view, report=report, filters=wanted, tasks=tasks)
