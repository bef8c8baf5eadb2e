"""Traffic routers, one per file behind the `Router` interface."""

from .base import Router, RouterTarget
from .gateway import GatewayRouter
from .service import ServiceRouter


def router_for(target: RouterTarget) -> Router:
    """The router the spec asks for."""
    if target.spec.rollout.traffic.router == "gatewayAPI":
        return GatewayRouter(target)
    return ServiceRouter(target)


__all__ = ["GatewayRouter", "Router", "RouterTarget", "ServiceRouter", "router_for"]
