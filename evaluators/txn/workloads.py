"""TXN workloads: the paper's three, read from a file the user has, or seeded look-alikes.

A workload is a named batch of transactions (strings of `r-<key>`, `w-<key>` and `*` tokens,
see model.py). The three kinds, after the workloads of "Towards Optimal Transaction
Scheduling" (PVLDB 2024) as used by the ADRS paper (PROBLEMS.md section 5.3):
- W1, hot keys: 100 transactions of 16 distinct keys drawn from a Zipf law (exponent about 2
  over about 5,300 ids, so a handful of keys is in every transaction and most of the tail
  appears once), each key near a position of its own in the transaction, about 55% writes;
- W2, two templates: 50 long `r-a r-b w-b` + 18 idle slots (a in 1..4, b in 11..50), then 50
  short `r-a w-a r-b w-b *`;
- W3, crossed read-write: 100 times `r-x` + 7 idle slots + `w-y`, the first half reading
  1..5 and writing 6..10, the second half the other way round.
The paper's file is not bundled (its licence is unstated): `load_workloads` reads it.
"""

from __future__ import annotations

import bisect
import functools
import itertools
import json
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from adrs.errors import UserError

from .bounds import BEST_KNOWN, digest, key_bound
from .model import Txn, lower_bound, makespan, parse_txn

PAPER_NAMES = ("WORKLOAD_1", "WORKLOAD_2", "WORKLOAD_3")
NAMES = ("W1", "W2", "W3")


@dataclass(frozen=True)
class Workload:
    """A named batch of transactions, as text and parsed."""

    name: str
    texts: tuple[str, ...]
    txns: tuple[Txn, ...]

    @classmethod
    def from_texts(cls, name: str, texts: Sequence[str]) -> Workload:
        """Parse `texts`; ValueError naming the transaction if one is malformed."""
        txns = []
        for index, text in enumerate(texts):
            try:
                txns.append(parse_txn(text))
            except ValueError as exc:
                raise ValueError(f"workload {name}, transaction {index}: {exc}") from None
        return cls(name=name, texts=tuple(texts), txns=tuple(txns))

    def __len__(self) -> int:
        return len(self.txns)

    @functools.cached_property
    def sequential_makespan(self) -> int:
        """The makespan of running the transactions in the order given."""
        return makespan(self.txns, range(len(self.txns)))

    @functools.cached_property
    def lower_bound(self) -> int:
        """The longest transaction (the bound of the score's formula)."""
        return lower_bound(self.txns)

    @functools.cached_property
    def bound(self) -> int:
        """A tighter lower bound: bounds.key_bound."""
        return key_bound(self.txns)

    @functools.cached_property
    def best_known(self) -> int | None:
        """The best makespan known for these transactions (bounds.BEST_KNOWN), if any."""
        return BEST_KNOWN.get(digest(self.texts))


# ------------------------------------------------------------------------------ the file
def load_workloads(path: str | Path) -> tuple[Workload, ...]:
    """Read the paper's workloads: `{"WORKLOAD_1": {"txn0": "w-17 r-5 ...", ...}, ...}`.

    Transactions keep the file's order. Raises UserError naming the defect if the file is
    missing or malformed.
    """
    where = Path(path).expanduser()
    try:
        data = json.loads(where.read_text(encoding="utf-8"))
    except OSError as exc:
        raise UserError(f"cannot read the TXN workloads '{where}': {exc.strerror}") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise UserError(f"TXN workloads '{where}' is not JSON: {exc}") from None
    if not isinstance(data, dict) or any(
            not isinstance(data.get(name), dict) for name in PAPER_NAMES):
        raise UserError(f"TXN workloads '{where}' must be an object with the objects "
                        f"{', '.join(PAPER_NAMES)} of transaction strings")
    workloads = []
    for short, name in zip(NAMES, PAPER_NAMES, strict=True):
        texts = list(data[name].values())
        if not texts or not all(isinstance(text, str) for text in texts):
            raise UserError(f"TXN workloads '{where}': {name} must map names to transaction "
                            "strings, and hold at least one")
        try:
            workloads.append(Workload.from_texts(short, texts))
        except ValueError as exc:
            raise UserError(f"TXN workloads '{where}': {exc}") from None
    return tuple(workloads)


# ---------------------------------------------------------------------------- generators
@dataclass(frozen=True)
class HotKeys:
    """Knobs of the W1-like generator, calibrated on the paper's W1 (see module docstring)."""

    txns: int = 100
    ops: int = 16
    key_space: int = 5300
    zipf_exponent: float = 1.95
    write_ratio: float = 0.555
    position_jitter: float = 1.0  # spread of a key's position around its own, in positions
    stray_ratio: float = 0.03  # chance that a key lands anywhere instead


def hot_keys(rng: random.Random, knobs: HotKeys = HotKeys()) -> list[str]:
    """W1-like transactions: distinct Zipf keys, each near its own position."""
    cumulative = list(itertools.accumulate(k ** -knobs.zipf_exponent
                                           for k in range(1, knobs.key_space + 1)))
    home: dict[int, float] = {}  # a key's usual position, fixed per workload
    texts = []
    for _ in range(knobs.txns):
        keys: set[int] = set()
        while len(keys) < knobs.ops:
            draw = rng.random() * cumulative[-1]
            keys.add(min(bisect.bisect_left(cumulative, draw), knobs.key_space - 1) + 1)
        for key in sorted(keys):
            home.setdefault(key, rng.uniform(0.0, knobs.ops))
        placed = sorted(keys, key=lambda k: _position(rng, home[k], knobs))
        texts.append(" ".join(f"{'w' if rng.random() < knobs.write_ratio else 'r'}-{key}"
                              for key in placed))
    return texts


def _position(rng: random.Random, home: float, knobs: HotKeys) -> float:
    if rng.random() < knobs.stray_ratio:
        return rng.uniform(0.0, knobs.ops)
    return home + rng.gauss(0.0, knobs.position_jitter)


def two_templates(rng: random.Random, txns: int = 100) -> list[str]:
    """W2-like: long read-read-write transactions, then short read-write pairs."""
    half = txns // 2
    idle = " ".join(["*"] * 18)
    texts = []
    for index in range(txns):
        a, b = rng.randint(1, 4), rng.randint(11, 50)
        texts.append(f"r-{a} r-{b} w-{b} {idle}" if index < half
                     else f"r-{a} w-{a} r-{b} w-{b} *")
    return texts


def crossed_read_write(rng: random.Random, txns: int = 100) -> list[str]:
    """W3-like: read one key, idle 7 slots, write one key of the other group."""
    half = txns // 2
    idle = " ".join(["*"] * 7)
    texts = []
    for index in range(txns):
        low, high = rng.randint(1, 5), rng.randint(6, 10)
        read, write = (low, high) if index < half else (high, low)
        texts.append(f"r-{read} {idle} w-{write}")
    return texts


GENERATORS: tuple[Callable[[random.Random], list[str]], ...] = (
    hot_keys, two_templates, crossed_read_write)


def generate_workloads(seed: int) -> tuple[Workload, ...]:
    """One workload of each kind, a pure function of `seed`."""
    return tuple(Workload.from_texts(name, make(random.Random(f"txn:{seed}:{name}")))
                 for name, make in zip(NAMES, GENERATORS, strict=True))
