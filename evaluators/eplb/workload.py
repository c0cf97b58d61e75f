"""EPLB workloads: per-window expert loads, from a real trace file or a seeded generator.

A workload is an int64 array `windows[k, layer, expert]`: the tokens routed to each expert
during window k, a window being the sum of `WINDOW_RECORDS` consecutive trace records.

The real trace (vLLM serving ShareGPT and GSM8K prompts on a DeepSeek-V3-shaped model) is
not bundled; `load_trace` reads it when the user has it. `synthetic_windows` generates a
trace of the same shape: 58 MoE layers, 256 routed experts in 8 groups, each token routed to
its top 8 experts within its top 4 groups (DeepSeek-V3's node-limited routing), two traffic
types (chat-like and math-like) whose mix shifts now and then, and expert popularity that
drifts slowly so that consecutive windows correlate. It is calibrated so that the DeepSeek
greedy balancer reaches a GPU balancedness of about 0.7 and a slot balancedness of about 0.3,
the figures reported for the real trace (PROBLEMS.md section 1). `warmup_window` makes a
window of the same shape that belongs to no workload, for the evaluator's warm-up calls.
"""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

from adrs.errors import UserError

WINDOW_RECORDS = 100
Windows = NDArray[np.int64]


@dataclass(frozen=True)
class TraceShape:
    """The shape of a synthetic trace and the routing it models."""

    records: int = 1200
    layers: int = 58
    experts: int = 256
    groups: int = 8
    top_groups: int = 4
    top_k: int = 8
    tokens_per_record: tuple[int, int] = (2000, 6000)


@dataclass(frozen=True)
class Skew:
    """How popularity is spread and how it moves; the calibration knobs (log scale)."""

    group_sigma: float = 1.2      # spread of group popularity
    expert_sigma: float = 0.6     # spread of expert popularity inside a layer
    type_sigma: float = 0.3       # how differently chat and math traffic route
    drift_sigma: float = 0.2      # random walk of log-popularity per window
    token_noise: float = 2.2      # per-token spread of router scores (Gumbel scale)
    shift_probability: float = 0.2  # chance per window that the traffic mix flips
    routing_tokens: int = 256     # tokens routed per layer to estimate routing odds


def load_trace(path: str | Path) -> Windows:
    """Read a trace file `{"load_history": [{"logical_expert_load": [[int]]}, ...]}` and
    sum every WINDOW_RECORDS consecutive records (a short last window is kept).

    Raises UserError naming the defect if the file is missing or malformed.
    """
    return _load_trace_cached(str(Path(path).expanduser().resolve()))


@functools.lru_cache(maxsize=2)
def _load_trace_cached(path: str) -> Windows:
    try:
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
    except OSError as exc:
        raise UserError(f"cannot read the EPLB trace '{path}': {exc.strerror}") from None
    except json.JSONDecodeError as exc:
        raise UserError(f"EPLB trace '{path}' is not JSON: {exc}") from None
    try:
        records = np.array([r["logical_expert_load"] for r in data["load_history"]],
                           dtype=np.int64)
    except (KeyError, TypeError, ValueError) as exc:
        raise UserError(f"EPLB trace '{path}' must hold {{'load_history': [{{"
                        f"'logical_expert_load': [[int]]}}, ...]}} with equal shapes: "
                        f"{type(exc).__name__}: {exc}") from None
    if records.ndim != 3 or len(records) <= WINDOW_RECORDS:
        raise UserError(f"EPLB trace '{path}' needs records of shape [layers][experts] and "
                        f"more than {WINDOW_RECORDS} of them (got shape {records.shape})")
    return window_sums(records)


def window_sums(records: NDArray[np.int64], size: int = WINDOW_RECORDS) -> Windows:
    """Sum each `size` consecutive records; the last window may be shorter."""
    starts = np.arange(0, len(records), size)
    return np.add.reduceat(records, starts, axis=0).astype(np.int64)


def warmup_window(like: NDArray[np.int64], seed: int, sigma: float = 1.2) -> NDArray[np.int64]:
    """A window of the shape and mean load of `like` [layers, experts], but unrelated to
    any window of the workload: skewed (log-normal popularity), Poisson counts, seeded.

    It warms a fresh candidate process up (imports, caches, the heap) on the same shapes and
    magnitudes as the scored calls, without showing it anything it is scored on.
    """
    rng = np.random.default_rng(seed)
    popularity = rng.lognormal(0.0, sigma, size=like.shape)
    popularity *= float(like.mean()) / popularity.mean(axis=-1, keepdims=True)
    return np.asarray(rng.poisson(popularity), dtype=np.int64)


@functools.lru_cache(maxsize=4)
def synthetic_windows(seed: int = 0, shape: TraceShape = TraceShape(),
                      skew: Skew = Skew()) -> Windows:
    """A seeded synthetic workload of `shape.records` records, as window sums.

    Routing odds are held fixed inside a window, so the window sum of per-record counts is
    drawn directly (a sum of binomials with equal odds is one binomial): same distribution,
    1/100 of the work. The result is read-only and shared between callers.
    """
    rng = np.random.default_rng(seed)
    n_windows = -(-shape.records // WINDOW_RECORDS)
    base = _popularity(rng, shape, skew)                     # [types, layers, experts]
    odds = np.stack([_routing_odds(rng, logits, shape, skew) for logits in base])
    windows = np.empty((n_windows, shape.layers, shape.experts), dtype=np.int64)
    drift = np.zeros((2, shape.layers, shape.experts))
    math_share = rng.uniform(0.2, 0.35)
    for k in range(n_windows):
        records = min(WINDOW_RECORDS, shape.records - k * WINDOW_RECORDS)
        tokens = int(rng.integers(*shape.tokens_per_record, size=records).sum())
        if k and rng.random() < skew.shift_probability:
            math_share = 1.0 - math_share + rng.normal(0.0, 0.05)
        math_share = float(np.clip(math_share, 0.05, 0.95))
        counts = np.zeros((shape.layers, shape.experts), dtype=np.int64)
        for kind, share in enumerate((1.0 - math_share, math_share)):
            p = _drifted(odds[kind], drift[kind], shape.top_k)
            counts += rng.binomial(round(tokens * share), p)
        windows[k] = counts
        drift += rng.normal(0.0, skew.drift_sigma, size=drift.shape)
    windows.flags.writeable = False
    return windows


def _popularity(rng: np.random.Generator, shape: TraceShape,
                skew: Skew) -> NDArray[np.float64]:
    """Router logits per traffic type: shared group and expert effects plus a type effect."""
    size = shape.experts // shape.groups
    group = rng.normal(0.0, skew.group_sigma, size=(shape.layers, shape.groups))
    expert = rng.normal(0.0, skew.expert_sigma, size=(shape.layers, shape.experts))
    shared = np.repeat(group, size, axis=1) + expert
    per_type = rng.normal(0.0, skew.type_sigma, size=(2, shape.layers, shape.experts))
    return np.asarray(shared[None] + per_type)


def _routing_odds(rng: np.random.Generator, logits: NDArray[np.float64], shape: TraceShape,
                  skew: Skew) -> NDArray[np.float64]:
    """Chance that a token picks each expert [layers, experts] (rows sum to top_k).

    Each sampled token adds Gumbel noise to the logits, keeps the top_groups groups with the
    best sum of their two best scores, then the top_k experts inside them.
    """
    layers, experts = logits.shape
    size = experts // shape.groups
    noise = rng.gumbel(0.0, skew.token_noise, size=(layers, skew.routing_tokens, experts))
    scores = logits[:, None, :] + noise
    grouped = scores.reshape(layers, skew.routing_tokens, shape.groups, size)
    group_score = np.partition(grouped, size - 2, axis=-1)[..., -2:].sum(-1)
    cut = shape.groups - shape.top_groups
    threshold = np.partition(group_score, cut, axis=-1)[..., cut:cut + 1]
    allowed = np.repeat(group_score >= threshold, size, axis=-1)
    scores = np.where(allowed, scores, -np.inf)
    chosen = np.argpartition(scores, experts - shape.top_k, axis=-1)[..., -shape.top_k:]
    picks = np.zeros_like(scores)
    np.put_along_axis(picks, chosen, 1.0, axis=-1)
    # Half a pick of prior: an expert no sampled token chose still gets a little traffic.
    return np.asarray((picks.sum(1) + 0.5) / skew.routing_tokens)


def _drifted(odds: NDArray[np.float64], drift: NDArray[np.float64],
             top_k: int) -> NDArray[np.float64]:
    """Odds moved by the drift, rescaled to top_k picks per token, capped at 1."""
    moved = odds * np.exp(drift)
    moved *= top_k / moved.sum(-1, keepdims=True)
    return np.asarray(np.minimum(moved, 1.0))
