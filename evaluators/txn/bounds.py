"""How short a workload's makespan can get: a lower bound, and the best makespan known.

`key_bound`: no order finishes before its longest transaction, nor before any one key's
operations have run one after the other. On a key, every write runs at a time of its own
(after every lock already there) and no read shares a time with a write (a read waits for
the latest write, a write for the latest lock), so the key needs at least W + (1 if it is
read) distinct times, W its number of writes. The first of them is no earlier than 1 plus
the smallest offset of an operation on the key, and the transaction holding the last one
runs on for at least the smallest number of tokens that follows such an operation:
makespan >= min offset + W + [read] + min tail.

`BEST_KNOWN`: the smallest makespan known for a workload, by the SHA-256 of its
transactions (`digest`): the paper's three (PROBLEMS.md 5.6: the LEVI solution, 162 / 33 /
33, reproduced there) and the generated ones (orders found by a local search, checked by
tests/evaluators/test_txn.py against stored orders in best_orders.py).
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

from .model import Txn, lower_bound


def key_bound(txns: Sequence[Txn]) -> int:
    """The lower bound of the module docstring."""
    writes: dict[str, int] = {}
    read: set[str] = set()
    offset: dict[str, int] = {}
    tail: dict[str, int] = {}
    for txn in txns:
        for op in txn.ops:
            writes[op.key] = writes.get(op.key, 0) + op.write
            if not op.write:
                read.add(op.key)
            offset[op.key] = min(offset.get(op.key, op.offset), op.offset)
            after = txn.length - 1 - op.offset
            tail[op.key] = min(tail.get(op.key, after), after)
    per_key = (offset[k] + writes[k] + (k in read) + tail[k] for k in writes)
    return max(lower_bound(txns), max(per_key, default=0))


def digest(texts: Sequence[str]) -> str:
    """The SHA-256 of a workload's transactions, in order."""
    return hashlib.sha256("\n".join(texts).encode()).hexdigest()


BEST_KNOWN: dict[str, int] = {
    # The paper's W1, W2, W3 (workloads.json of the ADRS repository).
    "4892f57d3e3bc308a1e029861d184d12b2b53c90fea326f42969b81db7a4fdbe": 162,
    "50626a31951fa1a7e3b1c4fc463250a8725825d405efe2ee095886cec32ef8db": 33,
    "f3b0ddf3355fe85d5cc9d7aedadbb806a54053a1e3a8700114026c2a130c6638": 33,
}
