"""`ModelDeployment.spec.access`: who may call the model (a NetworkPolicy, and bearer tokens on modelserver)."""

from __future__ import annotations

from typing import Annotated

from pydantic import ConfigDict, Field, model_validator

from .base import ApiModel, cel, validations

# A namespace name is a DNS label; a ServiceAccount name a DNS subdomain.
DNS_LABEL_PATTERN = r"^([a-z0-9]|[a-z0-9][-a-z0-9]*[a-z0-9])$"
SERVICE_ACCOUNT_PATTERN = r"^[a-z0-9]+([-.a-z0-9]*[a-z0-9])?$"
MAX_NAMESPACES = 32
MAX_SERVICE_ACCOUNTS = 64


class ServiceAccountRef(ApiModel):
    """A ServiceAccount allowed to call the model."""

    namespace: Annotated[str, Field(pattern=DNS_LABEL_PATTERN, max_length=63)]
    """Namespace of the ServiceAccount."""
    name: Annotated[str, Field(pattern=SERVICE_ACCOUNT_PATTERN, max_length=253)]
    """ServiceAccount name."""


class Access(ApiModel):
    """Who may call the model. A NetworkPolicy admits inference traffic (ports 8000, 8001) only from the pods of
the listed namespaces and of the ServiceAccounts' namespaces, plus the operator (gates, metrics) and Prometheus
(metrics, 8002). With requireToken, modelserver also checks every request's bearer token with the Kubernetes
TokenReview API (audience: modeldeploy.dev/NAMESPACE/NAME): no token is 401, a caller not listed is 403.
Unset: no NetworkPolicy and no token check."""

    model_config = ConfigDict(json_schema_extra=validations(
        cel("!has(self.requireToken) || !self.requireToken || has(self.serviceAccountName)",
            "requireToken needs serviceAccountName: the pods' ServiceAccount, allowed to create TokenReviews",
            ".serviceAccountName"),
    ))

    namespaces: Annotated[
        list[Annotated[str, Field(pattern=DNS_LABEL_PATTERN, max_length=63)]],
        Field(max_length=MAX_NAMESPACES),
    ] = Field(default_factory=list)
    """Namespaces whose pods (and, with requireToken, whose ServiceAccounts) may call the model. The model's own
namespace is not included unless listed."""
    service_accounts: Annotated[list[ServiceAccountRef], Field(max_length=MAX_SERVICE_ACCOUNTS)] = Field(
        default_factory=list)
    """ServiceAccounts that may call the model. The NetworkPolicy cannot tell pods apart by ServiceAccount, so it
admits their whole namespace; requireToken checks the ServiceAccount itself."""
    require_token: bool = False
    """modelserver refuses requests without a valid bearer token of an allowed caller (TokenReview). Needs
runtime.kind onnx: Triton pods are protected by the NetworkPolicy only."""
    service_account_name: Annotated[str | None, Field(pattern=SERVICE_ACCOUNT_PATTERN, max_length=253)] = None
    """ServiceAccount the inference pods run as when requireToken is set. It must be allowed to create
TokenReviews: bind it to the ClusterRole system:auth-delegator (the chart's accessControl.tokenReviewers)."""

    @model_validator(mode="after")
    def _checked(self) -> Access:
        # The CEL rule again, for objects that reach the operator without admission.
        if self.require_token and self.service_account_name is None:
            raise ValueError("access.serviceAccountName: requireToken needs the pods' ServiceAccount")
        return self
