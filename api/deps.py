"""FastAPI dependencies: the process's clients, and the caller's tenant from its API key."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from api.errors import ApiError
from keel.auth import Principal, resolve_key
from keel.clients import Clients
from keel.settings import Settings


async def get_clients(request: Request) -> Clients:
    clients: Clients = request.app.state.clients
    return clients


async def get_settings(request: Request) -> Settings:
    config: Settings = request.app.state.settings
    return config


async def authenticate(
    request: Request, clients: Annotated[Clients, Depends(get_clients)]
) -> Principal:
    """The tenant behind `Authorization: Bearer <key>` (or `x-api-key: <key>`, as the
    Anthropic SDK sends it); 401 with the reason otherwise."""
    header = request.headers.get("authorization", "")
    if not header and request.headers.get("x-api-key"):
        header = f"Bearer {request.headers['x-api-key']}"
    scheme, _, key = header.partition(" ")
    if not header:
        raise ApiError(
            401,
            "Unauthorized",
            "missing API key: send `Authorization: Bearer <key>` (create one with "
            "`keel keys create --tenant NAME`)",
            headers={"WWW-Authenticate": "Bearer"},
        )
    if scheme.lower() != "bearer" or not key.strip():
        raise ApiError(
            401,
            "Unauthorized",
            "malformed Authorization header: expected `Bearer <key>`",
            headers={"WWW-Authenticate": "Bearer"},
        )
    principal = await resolve_key(clients.quick, key.strip())
    if principal is None:
        raise ApiError(
            401,
            "Unauthorized",
            "unknown or revoked API key",
            headers={"WWW-Authenticate": "Bearer"},
        )
    return principal


ClientsDep = Annotated[Clients, Depends(get_clients)]
SettingsDep = Annotated[Settings, Depends(get_settings)]
PrincipalDep = Annotated[Principal, Depends(authenticate)]
