"""Configuration of one LLM endpoint: a model of an ensemble (the `llm.models` list).

The key itself never appears here: `api_key_env` names the environment variable that holds
it, read at call time, so the resolved config stored in the run folder holds no secret.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True)
class ModelConfig:
    """One model: a litellm model name (`openai/gpt-4o-mini`, `anthropic/claude-...`,
    `openai/<name>` with `api_base` for any OpenAI-compatible server), its share of the
    ensemble, its sampling settings and, for local or unpriced models, its prices in USD per
    token (else litellm's bundled price map is used)."""

    name: str
    api_base: str | None = None
    api_key_env: str | None = None
    weight: float = 1.0
    temperature: float = 0.7
    top_p: float | None = None
    max_tokens: int = 4096
    price_in: float | None = None
    price_out: float | None = None
    context_window: int | None = None

    def __post_init__(self) -> None:
        if not self.name.strip():
            raise ValueError("a model's 'name' must not be empty (e.g. 'openai/gpt-4o-mini')")
        if self.weight < 0:
            raise ValueError(f"model '{self.name}': 'weight' must be >= 0")
        if self.max_tokens < 1:
            raise ValueError(f"model '{self.name}': 'max_tokens' must be at least 1")
        if (self.price_in is None) != (self.price_out is None):
            raise ValueError(f"model '{self.name}': give both 'price_in' and 'price_out' "
                             "(USD per token) or neither")
        for price in (self.price_in, self.price_out):
            if price is not None and price < 0:
                raise ValueError(f"model '{self.name}': prices must be >= 0")

    @property
    def priced(self) -> bool:
        return self.price_in is not None and self.price_out is not None


class _LLMSettings(Protocol):
    @property
    def mode(self) -> str: ...
    @property
    def models(self) -> tuple[ModelConfig, ...]: ...
    @property
    def timeout_s(self) -> float: ...
    @property
    def max_retries(self) -> int: ...
    @property
    def retry_backoff_s(self) -> float: ...
    @property
    def replay(self) -> str | None: ...
    @property
    def manual_poll_s(self) -> float: ...


def check_llm(llm: _LLMSettings) -> None:
    """Validate the fields of the LLM part of one configuration layer (raises ValueError
    naming the fix). What needs the merged layers is checked by `mode_problem`."""
    if llm.timeout_s <= 0 or llm.manual_poll_s <= 0:
        raise ValueError("'timeout_s' and 'manual_poll_s' must be positive")
    if llm.max_retries < 0 or llm.retry_backoff_s < 0:
        raise ValueError("'max_retries' and 'retry_backoff_s' must be >= 0")
    names = [m.name for m in llm.models]
    if len(set(names)) != len(names):
        raise ValueError("llm.models names a model twice: list each model once")


def mode_problem(llm: _LLMSettings) -> str | None:
    """What the resolved configuration lacks for its mode, as a line naming the fix."""
    if llm.mode == "litellm" and not llm.models:
        return ("llm mode 'litellm' needs at least one model: pass --model NAME or list "
                "llm.models in the config file")
    if llm.mode == "litellm" and not any(m.weight > 0 for m in llm.models):
        return "every model in llm.models has weight 0: give at least one a positive weight"
    if llm.mode == "replay" and not llm.replay:
        return "llm mode 'replay' needs a recording: pass --replay FILE"
    return None
