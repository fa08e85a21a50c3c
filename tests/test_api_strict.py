"""Unknown fields in request bodies are refused with a 422 that names them, at any depth: a
misspelt `filters` must not be dropped silently and the query run unfiltered."""

from __future__ import annotations

import httpx
import pytest

from tests.conftest import Caller


async def test_a_misspelt_top_level_field_is_named_with_the_closest_known_one(
    api: httpx.AsyncClient, caller: Caller
) -> None:
    response = await api.post(
        "/v1/rag/query",
        json={"question": "How many vacation days?", "filtres": {"departments": ["HR"]}},
        headers=caller.headers,
    )
    assert response.status_code == 422
    error = response.json()["error"]
    assert error["type"] == "InvalidInput"
    assert error["details"]["problems"] == [
        {"field": "body.filtres", "problem": "unknown field 'filtres': did you mean 'filters'?"}
    ]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        (
            {"call": {"messages": [{"role": "user", "content": "hi"}], "temprature": 0.2}},
            "body.call.temprature",
        ),
        (
            {"call": {"messages": [{"role": "user", "content": "hi", "nmae": "x"}]}},
            "body.call.messages.0.nmae",
        ),
        (
            {"call": {"messages": [{"role": "user", "content": "hi"}]}, "budget": {"usd": 1}},
            "body.budget.usd",
        ),
    ],
)
async def test_unknown_nested_fields_are_refused_before_anything_runs(
    api: httpx.AsyncClient, caller: Caller, body: dict[str, object], field: str
) -> None:
    response = await api.post("/v1/model-calls", json=body, headers=caller.headers)
    assert response.status_code == 422, response.text
    problems = response.json()["error"]["details"]["problems"]
    assert [p["field"] for p in problems] == [field]
    assert problems[0]["problem"].startswith(f"unknown field {field.rsplit('.', 1)[1]!r}")
    assert field in response.json()["error"]["message"]
