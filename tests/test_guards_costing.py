"""Cost of a call from usage and prices, token estimates, and pre-call upper bounds."""

from __future__ import annotations

import pytest
from pydantic import BaseModel, ValidationError

from keel.contracts.guards import ModelPrice
from keel.contracts.llm import Usage
from keel.guards.costing import (
    UnknownModelError,
    cost_usd,
    estimate_cost,
    estimate_tokens,
    total_tokens,
)

PRICES = {
    "claude-haiku-4-5": ModelPrice(input=1.0, output=5.0, cached_input=0.10, cache_write=1.25),
    "gpt-4o-mini": ModelPrice(input=0.15, output=0.60, cached_input=0.075),
    "local-extractive": ModelPrice(input=0.0, output=0.0, cached_input=0.0),
}


def test_cost_prices_each_kind_of_token_at_its_rate() -> None:
    usage = Usage(input_tokens=1_000_000, output_tokens=1_000_000)
    assert cost_usd("claude-haiku-4-5", usage, PRICES) == pytest.approx(6.0)
    usage = Usage(
        input_tokens=2_000, cached_input_tokens=8_000, cache_write_tokens=1_000, output_tokens=500
    )
    # 2,000 uncached at $1/M + 8,000 cache reads at $0.10/M + 1,000 cache writes at $1.25/M
    # + 500 out at $5/M
    expected = (2_000 * 1.0 + 8_000 * 0.10 + 1_000 * 1.25 + 500 * 5.0) / 1_000_000
    assert cost_usd("claude-haiku-4-5", usage, PRICES) == pytest.approx(expected)


def test_cache_writes_without_a_rate_are_priced_as_input() -> None:
    usage = Usage(cache_write_tokens=1_000_000)
    assert cost_usd("gpt-4o-mini", usage, PRICES) == pytest.approx(0.15)


def test_cached_input_is_cheaper_than_the_same_tokens_uncached() -> None:
    cold = Usage(input_tokens=50_000, output_tokens=100)
    warm = Usage(input_tokens=5_000, cached_input_tokens=45_000, output_tokens=100)
    assert cost_usd("gpt-4o-mini", warm, PRICES) < cost_usd("gpt-4o-mini", cold, PRICES)


def test_zero_usage_and_free_models_cost_nothing() -> None:
    assert cost_usd("claude-haiku-4-5", Usage(), PRICES) == 0.0
    usage = Usage(input_tokens=10**6, output_tokens=10**6)
    assert cost_usd("local-extractive", usage, PRICES) == 0.0


def test_unknown_model_is_a_clear_error() -> None:
    with pytest.raises(UnknownModelError, match="gpt-9") as info:
        cost_usd("gpt-9", Usage(input_tokens=1), PRICES)
    assert info.value.model == "gpt-9"
    assert "claude-haiku-4-5" in str(info.value)  # names what is priced
    assert isinstance(info.value, LookupError)
    with pytest.raises(UnknownModelError):
        estimate_cost("gpt-9", 10, 10, PRICES)


def test_total_tokens_counts_every_kind() -> None:
    usage = Usage(input_tokens=7, cached_input_tokens=3, cache_write_tokens=2, output_tokens=5)
    assert total_tokens(usage) == 17


@pytest.mark.parametrize(
    ("text", "tokens"),
    [("", 0), ("a", 1), ("abcd", 1), ("abcde", 2), ("x" * 400, 100), ("x" * 401, 101)],
)
def test_estimate_tokens_is_chars_over_four_rounded_up(text: str, tokens: int) -> None:
    assert estimate_tokens(text) == tokens


def test_estimate_is_an_upper_bound_on_the_real_cost() -> None:
    estimate = estimate_cost("claude-haiku-4-5", 10_000, 1_000, PRICES)
    # Every prompt token at the dearest input rate (cache write, $1.25/M), output at its cap.
    assert estimate == pytest.approx((10_000 * 1.25 + 1_000 * 5.0) / 1_000_000)
    # However the 10,000 prompt tokens split between cache states and however short the
    # answer, the actual cost never exceeds the estimate.
    for cached in (0, 4_000, 10_000):
        for written in (0, 10_000 - cached):
            for output in (0, 500, 1_000):
                usage = Usage(
                    input_tokens=10_000 - cached - written,
                    cached_input_tokens=cached,
                    cache_write_tokens=written,
                    output_tokens=output,
                )
                assert cost_usd("claude-haiku-4-5", usage, PRICES) <= estimate


def test_estimate_without_cache_write_rate_uses_the_input_rate() -> None:
    estimate = estimate_cost("gpt-4o-mini", 1_000_000, 1_000_000, PRICES)
    assert estimate == pytest.approx(0.75)


def test_estimate_rejects_negative_counts() -> None:
    with pytest.raises(ValueError, match=">= 0"):
        estimate_cost("claude-haiku-4-5", -1, 10, PRICES)


def test_any_price_shaped_model_is_accepted() -> None:
    # The settings' own price model (or any object with the three rates) works unconverted.
    class SettingsPrice(BaseModel):
        input: float
        output: float
        cached_input: float

    prices = {"m": SettingsPrice(input=2.0, output=4.0, cached_input=1.0)}
    usage = Usage(input_tokens=500_000, cached_input_tokens=500_000, cache_write_tokens=250_000)
    assert cost_usd("m", usage, prices) == pytest.approx(1.0 + 0.5 + 0.5)


def test_price_contract_round_trips_and_rejects_negative_rates() -> None:
    price = ModelPrice(input=1.0, output=5.0, cached_input=0.1, cache_write=1.25)
    assert ModelPrice.model_validate_json(price.model_dump_json()) == price
    with pytest.raises(ValidationError):
        ModelPrice(input=-1.0, output=5.0, cached_input=0.1)
