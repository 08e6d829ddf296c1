"""The learned cost/quality router: per prompt, the cheapest model predicted to be good enough."""

from interlock.routing.router.model import LearnedRouter, RouterFileError, RouterModel

__all__ = ["LearnedRouter", "RouterFileError", "RouterModel"]
