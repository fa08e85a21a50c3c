"""What a model call costs: exact cost from usage, and an upper-bound estimate before the call.

Pure functions, safe inside the Temporal workflow sandbox: the price table is passed in (from
settings, through the workflow input) rather than read here, so a replay prices calls exactly
as the original run did even if prices have changed since.

Usage follows `keel.contracts.llm.Usage`, where the four token counts are disjoint:
`input_tokens` is the uncached input only, `cached_input_tokens` the input read from the
provider's prompt cache, `cache_write_tokens` the input written to it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Protocol

from keel.contracts.llm import Usage

_PER_MILLION = 1_000_000
CHARS_PER_TOKEN = 4


class Price(Protocol):
    """Anything with per-million-token USD rates: `keel.contracts.guards.ModelPrice` and the
    settings' price model both fit, so callers need not convert between them.

    An optional `cache_write` attribute (float or None) prices cache writes; without it they
    are priced at the input rate.
    """

    @property
    def input(self) -> float: ...

    @property
    def output(self) -> float: ...

    @property
    def cached_input(self) -> float: ...


class UnknownModelError(LookupError):
    """The price table has no entry for a model.

    Raised rather than pricing the call at zero, because a silent zero would let an unpriced
    model run past every USD budget. Workflow code should check a model before routing to it,
    or turn this into a non-retryable `ApplicationError`: an unhandled exception in a workflow
    fails the workflow task and is retried forever.
    """

    def __init__(self, model: str, known: Mapping[str, object]) -> None:
        self.model = model
        self.known = sorted(known)
        super().__init__(f"no price for model {model!r}; priced models: {', '.join(self.known)}")

    def __str__(self) -> str:
        # LookupError.__str__ would repr() the message (KeyError style); keep it readable.
        return str(self.args[0])


def price_of(model: str, prices: Mapping[str, Price]) -> Price:
    """Look up `model` in `prices`.

    Raises:
        UnknownModelError: `model` is not in `prices`.
    """
    try:
        return prices[model]
    except KeyError:
        raise UnknownModelError(model, prices) from None


def _cache_write_rate(price: Price) -> float:
    rate = getattr(price, "cache_write", None)
    return float(rate) if isinstance(rate, int | float) else price.input


def total_tokens(usage: Usage) -> int:
    """Every token of a call, as a run's token budget counts them.

    Args:
        usage: Reported usage.

    Returns:
        Uncached, cached and cache-written input plus output tokens.
    """
    return (
        usage.input_tokens
        + usage.cached_input_tokens
        + usage.cache_write_tokens
        + usage.output_tokens
    )


def cost_usd(model: str, usage: Usage, prices: Mapping[str, Price]) -> float:
    """USD cost of a finished call.

    Uncached input is charged at the input rate, cache reads at the cached-input rate, cache
    writes at the `cache_write` rate (the input rate when the price has none), and output at
    the output rate.

    Args:
        model: Model name as it appears in `prices`.
        usage: Tokens the provider reported, split as in `keel.contracts.llm.Usage`.
        prices: Model name to USD per million tokens.

    Returns:
        The cost in USD.

    Raises:
        UnknownModelError: `model` is not in `prices`.
    """
    price = price_of(model, prices)
    micro_usd = (
        usage.input_tokens * price.input
        + usage.cached_input_tokens * price.cached_input
        + usage.cache_write_tokens * _cache_write_rate(price)
        + usage.output_tokens * price.output
    )
    return micro_usd / _PER_MILLION


def estimate_tokens(text: str) -> int:
    """Rough token count of `text`: one token per 4 characters, rounded up.

    Four characters per token is the usual average for English under the BPE tokenizers of
    Anthropic and OpenAI models. It needs no tokenizer (none may be imported in workflow code)
    and is identical on every replay. It is an estimate, not a bound: code, numbers and
    non-Latin scripts run more tokens per character, which is why budget checks add the
    output cap on top (see `estimate_cost`) and reconcile against reported usage afterwards.

    Args:
        text: Any text.

    Returns:
        `ceil(len(text) / 4)`; 0 for the empty string.
    """
    return -(-len(text) // CHARS_PER_TOKEN)


def estimate_cost(
    model: str,
    prompt_tokens: int,
    max_output_tokens: int,
    prices: Mapping[str, Price],
) -> float:
    """Upper bound on a call's cost, for the budget check before the call.

    Whether the prompt will be read from, written to or miss the prompt cache is not known
    until the provider answers, so every prompt token is priced at the dearest of those
    rates, and the output at its cap: for the same token counts the real cost can only be
    lower.

    Args:
        model: Model name as it appears in `prices`.
        prompt_tokens: Prompt tokens, e.g. from `estimate_tokens`.
        max_output_tokens: The `max_tokens` the call is made with.
        prices: Model name to USD per million tokens.

    Returns:
        The estimated cost in USD.

    Raises:
        UnknownModelError: `model` is not in `prices`.
        ValueError: A token count is negative.
    """
    if prompt_tokens < 0 or max_output_tokens < 0:
        raise ValueError("token counts must be >= 0")
    price = price_of(model, prices)
    input_rate = max(price.input, price.cached_input, _cache_write_rate(price))
    return (prompt_tokens * input_rate + max_output_tokens * price.output) / _PER_MILLION
