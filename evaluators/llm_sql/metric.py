"""The hit-rate metric in force, chosen by the problem options `metric`, `cache_tokens` and
`block_tokens` (problems/llm-sql/problem.yaml):

- `metric: paper` (default): the paper's metric, longest prefix shared with any earlier
  prompt (hitrate.py); the row order does not change it.
- `metric: lru`: a bounded, block-granular prefix cache with LRU eviction of
  `cache_tokens` tokens in blocks of `block_tokens` tokens (lru_cache.py).

A bad value is a UserError naming the fix; the size options are checked whatever the metric.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from adrs.errors import UserError
from adrs.evaluators.llm_sql.hitrate import hit_rate
from adrs.evaluators.llm_sql.lru_cache import LruCache

METRIC_OPTION = "metric"
CACHE_OPTION = "cache_tokens"
BLOCK_OPTION = "block_tokens"
METRICS = ("paper", "lru")
# The defaults of problem.yaml. 16 tokens is vLLM's default block size. 16,384 tokens is a
# small cache next to a table's footprint (the synthetic beer table is 250,000 tokens, the real
# beer.csv 579,000), as when the KV cache is shared with other traffic, so that the row order
# decides what is still cached.
DEFAULT_CACHE_TOKENS = 16384
DEFAULT_BLOCK_TOKENS = 16


class Metric(Protocol):
    """A prefix hit rate of prompts sent in row order; hashable (evaluations are cached by
    metric). `rate` is pure: no state survives from one call to the next."""

    def rate(self, rows: Sequence[Sequence[str]]) -> float:
        """Hit over length of the rows' prompts (cells concatenated), in [0, 1]."""
        ...

    def describe(self) -> str:
        """One sentence for the feedback: which metric, and its parameters."""
        ...


@dataclass(frozen=True)
class PaperMetric:
    """The paper's metric: a prompt's hit is its longest prefix shared with any earlier one."""

    def rate(self, rows: Sequence[Sequence[str]]) -> float:
        return float(hit_rate(rows))  # typed float; mypy sees the installed alias as Any

    def describe(self) -> str:
        return ("paper: a prompt's hit is its longest prefix (in characters) shared with any "
                "earlier prompt, an unbounded cache; the total does not depend on the row "
                "order, only on each row's field order")


PAPER = PaperMetric()


def metric_from_options(options: Mapping[str, Any] | None) -> Metric:
    """The metric the problem options ask for; raises UserError for a bad value."""
    options = options or {}
    name = str(options.get(METRIC_OPTION) or "paper").strip().lower()
    if name not in METRICS:
        raise UserError(f"problem option {METRIC_OPTION}={options.get(METRIC_OPTION)!r}: use "
                        f"--option {METRIC_OPTION}=paper (the default) or ={METRICS[1]}")
    block = _positive(options, BLOCK_OPTION, DEFAULT_BLOCK_TOKENS)
    cache = _positive(options, CACHE_OPTION, DEFAULT_CACHE_TOKENS)
    if cache < block:
        raise UserError(f"problem option {CACHE_OPTION}={cache} is smaller than one block "
                        f"({BLOCK_OPTION}={block}): give --option {CACHE_OPTION}= at least "
                        f"{block} tokens")
    return LruCache(cache, block) if name == "lru" else PAPER


def _positive(options: Mapping[str, Any], name: str, default: int) -> int:
    """A whole number of tokens >= 1 (an int, or its decimal text); None means the default."""
    value = options.get(name)
    if value is None:
        return default
    text = str(value).strip()
    digits = text.isascii() and text.isdigit()
    if isinstance(value, bool) or not isinstance(value, int | str) or not digits \
            or int(text) < 1:
        raise UserError(f"problem option {name}={value!r} must be a whole number of tokens, "
                        f"at least 1: e.g. --option {name}={default}")
    return int(text)
