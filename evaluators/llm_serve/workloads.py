"""Request traces: seeded synthetic workloads and a user's own CSV trace.

Lengths follow log-normal laws fitted to the median and 90th percentile that Sarathi-Serve
(OSDI'24, Table 2) reports for its two datasets (README.md): openchat_sharegpt4 (chat:
prompt 1,730 / 5,696 tokens, output 415 / 834) and arxiv_summarization (prompt 7,059 /
12,985, output 208 / 371); the chat figures are verified against the trace file of
Sarathi-Serve's artifact, the arXiv ones only in part (README.md says which). Arrivals
are Poisson, or bursty: Gamma inter-arrival times with a coefficient of variation of 3
(AlpaServe's bursty model). Every scenario draws its own requests from its own seed,
so no scenario's past tells another's future.
"""

from __future__ import annotations

import csv
import math
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from adrs.errors import UserError
from adrs.evaluators.llm_serve.costmodel import MISTRAL_7B_A100

Z90 = 1.2815515655446004  # the standard normal's 90th percentile
BURST_CV = 3.0
MAX_TRACE_ROWS = 20_000
TRACE_COLUMNS = ("arrival_s", "prompt_tokens", "output_tokens")


@dataclass(frozen=True)
class Lengths:
    """A dataset's length statistics: median and 90th percentile of prompt and output."""

    name: str
    prompt_median: float
    prompt_p90: float
    output_median: float
    output_p90: float
    prompt_max: int

    def draw(self, rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
        prompts = _lognormal(rng, n, self.prompt_median, self.prompt_p90, 16, self.prompt_max)
        cap = MISTRAL_7B_A100.max_model_len - prompts
        outputs = np.minimum(_lognormal(rng, n, self.output_median, self.output_p90, 1, 4096),
                             cap)
        return prompts, outputs


CHAT = Lengths("chat", 1730, 5696, 415, 834, 12_000)
ARXIV = Lengths("arxiv", 7059, 12985, 208, 371, 15_000)
DATASETS = {d.name: d for d in (CHAT, ARXIV)}


def _lognormal(rng: np.random.Generator, n: int, median: float, p90: float, lo: int,
               hi: int) -> np.ndarray:
    sigma = math.log(p90 / median) / Z90
    values = rng.lognormal(math.log(median), sigma, n)
    return np.clip(np.rint(values), lo, hi).astype(np.int64)


@dataclass(frozen=True)
class Workload:
    """One trace: arrival times (s, non-decreasing), prompt and output lengths (tokens)."""

    name: str
    arrivals: np.ndarray
    prompts: np.ndarray
    outputs: np.ndarray

    @property
    def size(self) -> int:
        return int(self.arrivals.size)


def arrivals(rng: np.random.Generator, n: int, rate: float, bursty: bool) -> np.ndarray:
    """`n` arrival times at `rate` requests/s: Poisson, or Gamma gaps of CV BURST_CV."""
    if bursty:
        shape = 1.0 / BURST_CV**2
        gaps = rng.gamma(shape, 1.0 / (rate * shape), n)
    else:
        gaps = rng.exponential(1.0 / rate, n)
    gaps[0] = 0.0
    return np.cumsum(gaps)


def seed_of(name: str) -> int:
    return zlib.crc32(name.encode())


def generate(name: str, lengths: Lengths, n: int, rate: float, bursty: bool,
             seed: int | None = None) -> Workload:
    """A seeded synthetic workload (the seed defaults to one derived from `name`)."""
    rng = np.random.default_rng(seed_of(name) if seed is None else seed)
    prompts, outputs = lengths.draw(rng, n)
    return Workload(name, arrivals(rng, n, rate, bursty), prompts, outputs)


# ---------------------------------------------------------------------- the user's trace
def load_trace(path: str) -> Workload:
    """A CSV trace with the header arrival_s,prompt_tokens,output_tokens; any fault of the
    file is one UserError line naming the file, the line and the fix."""
    file = Path(path)
    if not file.is_file():
        raise UserError(f"llm-serve trace {path}: no such file; point --option trace= at a "
                        "CSV with the columns arrival_s,prompt_tokens,output_tokens")
    try:
        with file.open(newline="", encoding="utf-8") as handle:
            rows = list(csv.reader(handle))
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise UserError(f"llm-serve trace {path}: cannot read it ({exc})") from None
    return _parse(path, rows)


def _parse(path: str, rows: list[list[str]]) -> Workload:
    header = tuple(c.strip() for c in rows[0]) if rows else ()
    if header != TRACE_COLUMNS:
        raise UserError(f"llm-serve trace {path}: line 1 is {','.join(header) or 'empty'}; "
                        f"the header must be {','.join(TRACE_COLUMNS)}")
    body = [r for r in rows[1:] if any(c.strip() for c in r)]
    if not 1 <= len(body) <= MAX_TRACE_ROWS:
        raise UserError(f"llm-serve trace {path}: {len(body)} requests; give 1 to "
                        f"{MAX_TRACE_ROWS}")
    values = [_row(path, i + 2, r) for i, r in enumerate(body)]
    data = np.array(values, dtype=np.float64)
    order = np.argsort(data[:, 0], kind="stable")
    data = data[order]
    return Workload(Path(path).stem, data[:, 0] - data[0, 0], data[:, 1].astype(np.int64),
                    data[:, 2].astype(np.int64))


def _row(path: str, line: int, row: list[str]) -> tuple[float, int, int]:
    where = f"llm-serve trace {path}, line {line}"
    if len(row) != 3:
        raise UserError(f"{where}: {len(row)} fields; expected arrival_s,prompt_tokens,"
                        "output_tokens")
    try:
        arrival, prompt, output = float(row[0]), int(row[1]), int(row[2])
    except ValueError:
        raise UserError(f"{where}: {','.join(row)!r} is not a number, an integer and an "
                        "integer") from None
    limit = MISTRAL_7B_A100.max_model_len
    if not math.isfinite(arrival) or arrival < 0:
        raise UserError(f"{where}: arrival_s {row[0]} must be a finite number >= 0")
    if prompt < 1 or output < 1 or prompt + output > limit:
        raise UserError(f"{where}: prompt_tokens and output_tokens must be >= 1 and sum to "
                        f"at most {limit}")
    return arrival, prompt, output
