"""History scenario: the breaker entity after an admission and a reported success."""

from __future__ import annotations

from keel.clients import Clients
from keel.settings import Settings
from tests.histories.scenario_model_call import scenario as model_call
from workflows.llm import circuit_workflow_id


async def scenario(clients: Clients, settings: Settings) -> str:
    await model_call(clients, settings)  # a cache miss goes through the breaker
    return circuit_workflow_id("", "local-extractive")
