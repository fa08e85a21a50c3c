"""Blocking work inside an activity, off the event loop, with the activity heartbeating."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from temporalio import activity

T = TypeVar("T")


async def in_thread(fn: Callable[..., T], *args: Any) -> T:
    """Run blocking work (parsing, tokenizing, a model) off the event loop, heartbeating.

    The heartbeats say "this worker is alive" while a long call runs, and are how Temporal
    delivers a cancel to the activity. A dead worker stops heartbeating, so its attempt is
    retried elsewhere after the heartbeat timeout instead of the whole start-to-close one.
    """
    task = asyncio.ensure_future(asyncio.to_thread(fn, *args))
    while True:
        done, _ = await asyncio.wait({task}, timeout=1.0)
        if done:
            return task.result()
        activity.heartbeat()


async def heartbeating(work: Awaitable[T], *, every: float = 2.0) -> T:
    """Await `work` (a provider call: network, not CPU), heartbeating every `every` seconds,
    so a worker that dies mid-call is noticed within the heartbeat timeout, not after the
    whole start-to-close timeout (two minutes for a provider call)."""
    task = asyncio.ensure_future(work)
    try:
        while True:
            done, _ = await asyncio.wait({task}, timeout=every)
            if done:
                return task.result()
            activity.heartbeat()
    finally:
        task.cancel()  # a cancelled activity stops its call too
