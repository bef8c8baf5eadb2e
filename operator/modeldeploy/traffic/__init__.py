"""Traffic routers, one per file behind the `Router` interface."""

from .base import Router, RouterTarget
from .service import ServiceRouter


def router_for(target: RouterTarget) -> Router:
    """The router the spec asks for."""
    return ServiceRouter(target)


__all__ = ["Router", "RouterTarget", "ServiceRouter", "router_for"]
