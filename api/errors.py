"""Every error the API returns has one shape: {"error": {"type", "message", "details"}}.

Failures from Temporal (workflow failed, update rejected) and validation errors are mapped to
HTTP statuses here, in one place.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from starlette.exceptions import HTTPException as StarletteHTTPException
from temporalio.client import WorkflowFailureError
from temporalio.exceptions import ApplicationError, FailureError

from api.strict import suggestion


class ErrorBody(BaseModel):
    type: str
    message: str
    details: dict[str, Any] = {}


class ErrorResponse(BaseModel):
    error: ErrorBody


class ApiError(Exception):
    """An error with an HTTP status and a machine-readable type."""

    def __init__(
        self,
        status: int,
        type_: str,
        message: str,
        *,
        details: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.type = type_
        self.message = message
        self.details = details or {}
        self.headers = headers


def not_found(what: str, ident: str) -> ApiError:
    # 404, never 403, for another tenant's resources: do not confirm that they exist.
    return ApiError(404, "NotFound", f"{what} {ident!r} not found", details={"id": ident})


def _body(type_: str, message: str, details: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"error": {"type": type_, "message": message, "details": details or {}}}


STATUS_TYPES = {
    400: "BadRequest",
    401: "Unauthorized",
    403: "Forbidden",
    404: "NotFound",
    405: "MethodNotAllowed",
    406: "NotAcceptable",
    413: "PayloadTooLarge",
    415: "UnsupportedMediaType",
    422: "InvalidInput",
    429: "RateLimited",
}


# The HTTP status of a run that failed with one of Keel's error types (keel/errors.py).
FAILURE_STATUS = {
    "InvalidInput": 422,
    "NotFound": 404,
    "UnsupportedFormat": 415,
    "TooLarge": 413,
    "BudgetExhausted": 402,
    "RateLimited": 429,
    "SafetyBlocked": 422,
    "ProviderRejected": 502,
    "ProviderRateLimited": 503,
    "ProviderOverloaded": 503,
    "ProviderUnavailable": 502,
    "ProviderBadResponse": 502,
    "ProviderTimeout": 504,
    "DependencyDown": 503,
}


def failure_body(exc: BaseException) -> dict[str, str]:
    """The innermost cause of a workflow or activity failure, as `{"type", "message"}`."""
    cause: BaseException = exc.cause if isinstance(exc, WorkflowFailureError) else exc
    while isinstance(cause, FailureError) and cause.__cause__ is not None:
        cause = cause.__cause__
    kind = cause.type if isinstance(cause, ApplicationError) else type(cause).__name__
    message = cause.message if isinstance(cause, FailureError) else str(cause)
    return {"type": kind or "Failure", "message": message}


def run_failed(exc: BaseException, run_id: str) -> ApiError:
    """A run that failed while the caller waited: its own typed error, with the run's id."""
    failure = failure_body(exc)
    return ApiError(
        FAILURE_STATUS.get(failure["type"], 500),
        failure["type"],
        failure["message"],
        details={"id": run_id, "result_url": f"/v1/runs/{run_id}"},
    )


# The OpenAI- and Anthropic-compatible routes (`api.compat`) answer errors in their
# provider's shape, so the provider SDKs raise their own typed exceptions with Keel's message.
ANTHROPIC_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    429: "rate_limit_error",
    529: "overloaded_error",
}
OPENAI_PATHS = ("/v1/chat/completions", "/v1/models")
ANTHROPIC_PATHS = ("/v1/messages",)


def dialect(path: str) -> Literal["openai", "anthropic"] | None:
    if path.startswith(OPENAI_PATHS):
        return "openai"
    if path.startswith(ANTHROPIC_PATHS):
        return "anthropic"
    return None


def dialect_body(
    kind: Literal["openai", "anthropic"], status: int, type_: str, message: str, field: str = ""
) -> dict[str, Any]:
    """An error as the provider's SDK parses it (its message shown by the SDK's exception)."""
    if kind == "anthropic":
        name = ANTHROPIC_TYPES.get(status, "api_error" if status < 503 else "overloaded_error")
        return {"type": "error", "error": {"type": name, "message": message}}
    return {"error": {"message": message, "type": type_, "param": field or None, "code": type_}}


def _problem(error: dict[str, Any]) -> str:
    """What is wrong with one field; an unknown field names its closest known one."""
    if error.get("type") == "extra_forbidden" and error.get("loc"):
        known = (error.get("ctx") or {}).get("known") or []
        return suggestion(str(error["loc"][-1]), known) if known else "unknown field"
    return str(error.get("msg", ""))


def install(app: FastAPI) -> None:
    """Register the handlers that give every error the common body."""

    def respond(
        request: Request,
        status: int,
        type_: str,
        message: str,
        details: dict[str, Any] | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> JSONResponse:
        kind = dialect(request.url.path)
        if kind is None:
            body = _body(type_, message, details)
        else:
            details = details or {}
            problems = details.get("problems") or [{}]
            field = str(details.get("field") or problems[0].get("field", ""))
            status = 400 if status == 422 else status  # the providers say 400 for bad input
            body = dialect_body(kind, status, type_, message, field)
        return JSONResponse(body, status_code=status, headers=headers)

    @app.exception_handler(ApiError)
    async def _api_error(request: Request, exc: ApiError) -> JSONResponse:
        return respond(request, exc.status, exc.type, exc.message, exc.details, exc.headers)

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> JSONResponse:
        problems = [
            {"field": ".".join(str(p) for p in e.get("loc", ())), "problem": _problem(e)}
            for e in exc.errors()
        ]
        fields = ", ".join(p["field"] for p in problems) or "request"
        detail = "; ".join(f"{p['field']}: {p['problem']}" for p in problems)
        return respond(
            request,
            422,
            "InvalidInput",
            f"invalid request: {fields}" + (f" ({detail})" if dialect(request.url.path) else ""),
            {"problems": problems},
        )

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        type_ = STATUS_TYPES.get(exc.status_code, "HttpError")
        return respond(request, exc.status_code, type_, str(exc.detail), None, exc.headers)
