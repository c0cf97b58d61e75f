"""A model's prices in USD per token, looked up once per model.

Configured prices (`price_in`, `price_out`) win. Otherwise litellm's price map: through
litellm when it is loaded (`litellm_prices`), or read from the copy bundled with litellm
without importing it (`bundled_prices`, for the openai client, which never loads litellm).
A model the map does not know costs 0 (its price is unknown). The cost of a call is then
its token counts times these prices: litellm's per-call cost lookup is not needed.
"""

from __future__ import annotations

import functools
import importlib.util
import json
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

from adrs.config.llm import ModelConfig

BUNDLED_MAP = "model_prices_and_context_window_backup.json"


@dataclass(frozen=True)
class Prices:
    """USD per prompt token and per completion token."""

    prompt: float = 0.0
    completion: float = 0.0

    def cost(self, prompt_tokens: int, completion_tokens: int) -> float:
        return prompt_tokens * self.prompt + completion_tokens * self.completion


def configured(model: ModelConfig) -> Prices | None:
    if model.price_in is not None and model.price_out is not None:
        return Prices(model.price_in, model.price_out)
    return None


def litellm_prices(litellm: ModuleType, model: ModelConfig) -> Prices:
    """Configured prices, else litellm's model information for `model.name`."""
    prices = configured(model)
    if prices is not None:
        return prices
    try:
        info = litellm.get_model_info(model.name)
    except Exception:  # litellm raises for models missing from its price map
        return Prices()
    return _from_entry(info)


def bundled_prices(model: ModelConfig) -> Prices:
    """Configured prices, else the entry of litellm's bundled price map for the model
    (its full name, or the name after the provider: `openai/gpt-4o` -> `gpt-4o`)."""
    prices = configured(model)
    if prices is not None:
        return prices
    table = _bundled_map()
    name = model.name
    entry = table.get(name) or table.get(name.split("/", 1)[-1])
    return _from_entry(entry) if isinstance(entry, dict) else Prices()


def _from_entry(entry: Any) -> Prices:
    try:
        return Prices(float(entry.get("input_cost_per_token") or 0.0),
                      float(entry.get("output_cost_per_token") or 0.0))
    except (AttributeError, TypeError, ValueError):
        return Prices()


@functools.cache
def _bundled_map() -> dict[str, Any]:
    """litellm's bundled price map, read once (about 60 ms); empty when not installed."""
    spec = importlib.util.find_spec("litellm")  # finds the package without importing it
    folders = list(spec.submodule_search_locations or []) if spec else []
    for folder in folders:
        path = Path(folder) / BUNDLED_MAP
        try:
            table = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        return table if isinstance(table, dict) else {}
    return {}
