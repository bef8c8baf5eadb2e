"""Request errors shared by the REST and gRPC front ends.

Each error knows its HTTP status, its gRPC status and the ``reason`` label it is counted
under in ``nv_inference_request_failure``.
"""

from __future__ import annotations

import grpc


class ServingError(Exception):
    http_status = 400
    grpc_code = grpc.StatusCode.INVALID_ARGUMENT
    reason = "REJECTED"  # Triton's failure reasons: REJECTED, CANCELED, BACKEND, OTHER

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class InvalidInput(ServingError):
    """The request does not match the model signature or the protocol."""


class ModelNotFound(ServingError):
    http_status = 404
    grpc_code = grpc.StatusCode.NOT_FOUND
    reason = "REJECTED"


class ModelNotReady(ServingError):
    # Triton answers 400 for a model that exists but is not ready; so do we.
    http_status = 400
    grpc_code = grpc.StatusCode.UNAVAILABLE
    reason = "REJECTED"


class RequestTooLarge(ServingError):
    http_status = 413
    grpc_code = grpc.StatusCode.RESOURCE_EXHAUSTED
    reason = "REJECTED"


class InjectedFault(ServingError):
    """MODELSERVER_FAULT_ERROR_RATE: a deliberate server error for canary tests."""

    http_status = 500
    grpc_code = grpc.StatusCode.INTERNAL
    reason = "injected"


class ModelRunError(ServingError):
    """ONNX Runtime rejected inputs that passed the signature checks (values, dim combos)."""

    reason = "BACKEND"


class BackendError(ServingError):
    """An unexpected failure inside the server (a bug, not the request)."""

    http_status = 500
    grpc_code = grpc.StatusCode.INTERNAL
    reason = "OTHER"
