"""Per-API-key token limits (per minute and per day), counted in Redis.

Provider attempts add their tokens to the calling key's windows (`activities/ledger.py`);
this dependency refuses new work once a window is full, with 429, `Retry-After`, and the
limit that was hit.
"""

from __future__ import annotations

import logging
import time
from datetime import UTC, datetime, timedelta

from activities.gateway_steps import REDIS_DOWN
from api.deps import ClientsDep, PrincipalDep
from api.errors import ApiError
from keel.auth import Principal

log = logging.getLogger(__name__)


async def enforce_token_limits(principal: PrincipalDep, clients: ClientsDep) -> Principal:
    """Pass the principal through, or raise 429 naming the exhausted limit."""
    if principal.tokens_per_minute is None and principal.tokens_per_day is None:
        return principal
    now = time.time()
    now_utc = datetime.now(UTC)
    minute_key = f"keel:rl:{principal.key_id}:m:{int(now) // 60}"
    day_key = f"keel:rl:{principal.key_id}:d:{now_utc:%Y%m%d}"
    try:
        minute_used, day_used = await clients.redis.mget(minute_key, day_key)
    except REDIS_DOWN as exc:  # limits cannot be read: serve, as the caches do without Redis
        log.warning("token limits unreadable, redis is unreachable: %s", exc)
        return principal
    checks = [
        ("tokens_per_minute", principal.tokens_per_minute, minute_used, 60 - int(now) % 60),
        (
            "tokens_per_day",
            principal.tokens_per_day,
            day_used,
            int(
                (
                    (now_utc + timedelta(days=1)).replace(hour=0, minute=0, second=0, microsecond=0)
                    - now_utc
                ).total_seconds()
            )
            + 1,
        ),
    ]
    for name, limit, used_raw, retry_after in checks:
        used = int(used_raw or 0)
        if limit is not None and used >= limit:
            raise ApiError(
                429,
                "RateLimited",
                f"API key exceeded its {name} limit ({used} of {limit} tokens); "
                f"retry in {retry_after} s",
                details={"limit": name, "allowed": limit, "used": used},
                headers={"Retry-After": str(retry_after)},
            )
    return principal
