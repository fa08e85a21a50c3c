"""The provider interface and the one place SDK failures become Keel's typed errors.

This module imports no provider SDK: `anthropic` alone takes seconds to import, and code
that only needs the local provider should not pay for it. Each SDK module describes its
exception classes with `SdkErrors` and hands them to `provider_failure`.
"""

from __future__ import annotations

import email.utils
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

from pydantic import SecretStr
from temporalio.exceptions import ApplicationError

from keel.contracts.llm import LlmRequest, LlmResponse
from keel.errors import ErrorType, failure

# Provider messages can echo parts of the request; keep history rows small.
_MAX_MESSAGE_CHARS = 500


# Where a streamed answer's pieces go as they arrive (Keel's run events).
TextSink = Callable[[str], Awaitable[None]]


@runtime_checkable
class Provider(Protocol):
    """A model provider: one request in, one response out, typed `ApplicationError` on failure.

    Implementations never retry on their own: Temporal owns retries, so every attempt is a
    separate activity attempt in workflow history.
    """

    name: str

    async def complete(self, request: LlmRequest, on_text: TextSink | None = None) -> LlmResponse:
        """Run one completion; with `on_text`, stream it: each piece of the answer is handed
        to `on_text` as it arrives, and the whole response is still returned at the end.

        Raises:
            temporalio.exceptions.ApplicationError: typed with an `ErrorType`; retryable or
                not as `keel.errors` decides.
        """
        ...


def client_options(
    provider: str, api_key: SecretStr | str, base_url: str, timeout: float
) -> dict[str, Any]:
    """The SDK client's arguments, the same for both SDKs: the unwrapped key, the base URL
    (empty: the SDK's default, which honours its `*_BASE_URL` variable), one timeout for the
    whole request, and no SDK retries (Temporal retries, visibly in history).

    Raises:
        ValueError: the key is empty (the provider is not configured).
    """
    key = api_key.get_secret_value() if isinstance(api_key, SecretStr) else api_key
    if not key:
        raise ValueError(f"{provider} api key is empty: the provider is not configured")
    return {"api_key": key, "base_url": base_url or None, "timeout": timeout, "max_retries": 0}


@dataclass(frozen=True)
class SdkErrors:
    """The exception classes of one Stainless-generated SDK (`anthropic`, `openai`).

    Both SDKs share this hierarchy; naming the classes here keeps `provider_failure` free of
    SDK imports.
    """

    base: type[Exception]  # APIError: every failure of a request
    status: type[Exception]  # APIStatusError: the server answered 4xx/5xx
    timeout: type[Exception]  # APITimeoutError, a subclass of `connection`
    connection: type[Exception]  # APIConnectionError: no answer at all
    bad_response: tuple[type[Exception], ...]  # APIResponseValidationError, JSON decode errors

    @property
    def catch(self) -> tuple[type[Exception], ...]:
        """What a provider call should catch and hand to `provider_failure`."""
        return (self.base, *self.bad_response)


def retry_after_seconds(headers: Mapping[str, str] | None) -> float | None:
    """Read how long the provider asked us to wait, in seconds.

    Prefers `retry-after-ms` (sent by Anthropic and OpenAI, more precise), then
    `Retry-After` as seconds or as an HTTP date.

    Args:
        headers: response headers; lookups must be case-insensitive (httpx headers are).

    Returns:
        The delay in seconds, or None when absent or unparseable.
    """
    if headers is None:
        return None
    millis = headers.get("retry-after-ms")
    if millis is not None:
        try:
            return max(float(millis) / 1000.0, 0.0)
        except ValueError:
            pass
    value = headers.get("retry-after")
    if value is None:
        return None
    try:
        return max(float(value), 0.0)
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(when.timestamp() - time.time(), 0.0)


def _body_error_type(body: object) -> str | None:
    # Anthropic: {"type": "error", "error": {"type": "overloaded_error", ...}};
    # OpenAI: {"error": {"type": ..., "code": ...}}; its SDK may keep only the inner dict.
    if not isinstance(body, dict):
        return None
    inner = body.get("error")
    err = inner if isinstance(inner, dict) else body
    kind = err.get("code") or err.get("type")
    return kind if isinstance(kind, str) else None


def status_failure(
    provider: str,
    status: int,
    message: str,
    *,
    headers: Mapping[str, str] | None = None,
    body_error_type: str | None = None,
    request_id: str | None = None,
) -> ApplicationError:
    """Map an HTTP error answer from a provider to a typed `ApplicationError`.

    429 is rate limiting (waits for `Retry-After`), 529 or an Anthropic `overloaded_error`
    is overload, 408 a timeout, other 5xx unavailability: all retryable. Any other 4xx is
    the request's fault (bad input, bad key, unknown model, content policy) and will fail
    the same way again, so it is non-retryable.

    Args:
        provider: provider name, recorded in the error details.
        status: HTTP status code of the answer.
        message: the provider's message; truncated.
        headers: response headers, for `Retry-After`.
        body_error_type: the provider's error type or code from the body, if any.
        request_id: the provider's request id, for support tickets.

    Returns:
        The error to raise from the activity.
    """
    retry_after: float | None = None
    if status == 429:
        kind = ErrorType.PROVIDER_RATE_LIMITED
        retry_after = retry_after_seconds(headers)
    elif status == 529 or body_error_type == "overloaded_error":
        kind = ErrorType.PROVIDER_OVERLOADED
    elif status == 408:
        kind = ErrorType.PROVIDER_TIMEOUT
    elif status >= 500:
        kind = ErrorType.PROVIDER_UNAVAILABLE
    else:
        kind = ErrorType.PROVIDER_REJECTED
    details: dict[str, Any] = {
        "provider": provider,
        "status": status,
        "provider_error": body_error_type,
        "request_id": request_id,
    }
    return failure(
        kind,
        f"{provider} answered HTTP {status}: {message[:_MAX_MESSAGE_CHARS]}",
        details,
        retry_after=retry_after,
    )


def bad_response(provider: str, message: str, *, status: int | None = 200) -> ApplicationError:
    """A provider answer Keel could not read: retryable, the next attempt may be fine.

    Args:
        provider: provider name, recorded in the error details.
        message: what was wrong with the answer.
        status: HTTP status of the unreadable answer.

    Returns:
        The error to raise from the activity.
    """
    return failure(
        ErrorType.PROVIDER_BAD_RESPONSE,
        f"{provider} sent an unreadable response: {message[:_MAX_MESSAGE_CHARS]}",
        {"provider": provider, "status": status},
    )


def refused(provider: str, reason: str) -> ApplicationError:
    """A content-policy refusal: non-retryable, the same prompt gets the same refusal.

    Args:
        provider: provider name, recorded in the error details.
        reason: the provider's refusal text or stop reason.

    Returns:
        The error to raise from the activity.
    """
    return failure(
        ErrorType.PROVIDER_REJECTED,
        f"{provider} refused the request: {reason[:_MAX_MESSAGE_CHARS]}",
        {"provider": provider, "status": 200, "provider_error": "refusal"},
    )


def provider_failure(exc: Exception, *, provider: str, sdk: SdkErrors) -> ApplicationError:
    """Map an exception raised by a provider SDK call to Keel's typed `ApplicationError`.

    Args:
        exc: what the SDK raised.
        provider: provider name, recorded in the error details.
        sdk: the SDK's exception classes.

    Returns:
        The error to raise (`raise provider_failure(...) from exc`). Errors the table does not
        name become retryable `PROVIDER_UNAVAILABLE`: an unknown failure of a remote service
        is more likely transient than permanent.
    """
    if isinstance(exc, sdk.status):
        status = int(getattr(exc, "status_code", 0))
        response = getattr(exc, "response", None)
        headers = getattr(response, "headers", None)
        return status_failure(
            provider,
            status,
            # `api_message` (Anthropic) is the body's message alone, without the raw body.
            str(getattr(exc, "api_message", None) or getattr(exc, "message", exc)),
            headers=headers,
            body_error_type=_body_error_type(getattr(exc, "body", None)),
            request_id=getattr(exc, "request_id", None),
        )
    if isinstance(exc, sdk.bad_response):
        return bad_response(provider, str(exc), status=getattr(exc, "status_code", 200))
    if isinstance(exc, sdk.timeout):
        return failure(
            ErrorType.PROVIDER_TIMEOUT,
            f"{provider} did not answer in time",
            {"provider": provider, "status": None},
        )
    kind = ErrorType.PROVIDER_UNAVAILABLE
    what = "could not be reached" if isinstance(exc, sdk.connection) else "failed"
    return failure(
        kind,
        f"{provider} {what}: {str(exc)[:_MAX_MESSAGE_CHARS]}",
        {"provider": provider, "status": None},
    )
