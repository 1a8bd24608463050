"""The error hierarchy every process shares, and what each kind maps to on the wire."""

from __future__ import annotations

import grpc


class VoiceError(Exception):
    """Base of the project's errors. ``retryable`` says whether trying again may succeed."""

    retryable = False
    status = grpc.StatusCode.INTERNAL


class SettingsError(VoiceError):
    """A setting is missing or malformed. Raised at start so a bad value fails at once."""


class InvalidRequestError(VoiceError):
    """The caller sent something the service cannot use."""

    status = grpc.StatusCode.INVALID_ARGUMENT


class ResourceExhaustedError(VoiceError):
    """The service is at capacity; the caller may try again later."""

    retryable = True
    status = grpc.StatusCode.RESOURCE_EXHAUSTED


class UpstreamUnavailableError(VoiceError):
    """A stage the caller depends on cannot be reached."""

    retryable = True
    status = grpc.StatusCode.UNAVAILABLE


class EngineError(VoiceError):
    """A model engine failed while working."""


def is_retryable_status(code: grpc.StatusCode) -> bool:
    """Whether a gRPC status from a peer is worth a retry."""
    return code in (
        grpc.StatusCode.UNAVAILABLE,
        grpc.StatusCode.RESOURCE_EXHAUSTED,
        grpc.StatusCode.DEADLINE_EXCEEDED,
    )
