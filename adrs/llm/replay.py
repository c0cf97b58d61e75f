"""Recording LLM exchanges to a JSON-lines file, and replaying them without any network.

Each line is one exchange: candidate id, attempt, the SHA-256 of the request's messages,
the reply text and its usage. Replay answers request (candidate, attempt) with the recorded
reply and usage (so costs and budgets replay too). A request whose messages differ from the
recording means the run diverged (other seed, config or program): that stops the run with
one line rather than silently answering another question. Keys are never part of an
exchange.

Prompts also show measured figures (a txn workload's runtime, eplb's `t_ms`), which differ
on every evaluation of the same program, so a replay that did not diverge asks prompts
whose figures differ. Each exchange therefore also stores its `shape`: the SHA-256 of the
messages with every number (a run of digits, with its sign, decimal part and exponent)
replaced by one placeholder, table spacing collapsed and the clauses of each line sorted
(`figures_out`). A request whose digest differs but whose shape equals the recorded one
is answered from the recording and counted as drift; `ReplayClient.close` says how many
(`drift_notice`). Recordings without `shape` (older ones) stay strict.
"""

from __future__ import annotations

import hashlib
import json
import re
import sys
from pathlib import Path
from typing import IO, Any

from adrs.errors import UserError
from adrs.llm.mutator import LLMClient, LLMReply, LLMRequest
from adrs.types import LLMUsage


class ReplayMismatch(UserError):
    """The replayed run asked something the recording does not hold."""


_FIGURE = re.compile(r"[-+]?\d+(?:\.\d+)?(?:[eE][+-]?\d+)?")
_CLAUSE = re.compile(r"\s*[;:]\s*")
_SPACES = re.compile(r"[ \t]+")


def request_digest(request: LLMRequest) -> str:
    data = json.dumps([[m.role, m.content] for m in request.messages])
    return hashlib.sha256(data.encode("utf-8")).hexdigest()


def request_shape(request: LLMRequest) -> str:
    """The digest of the messages' shape: equal for two prompts that differ in figures only
    (see `figures_out`)."""
    data = json.dumps([[m.role, figures_out(m.content)] for m in request.messages])
    return hashlib.sha256(data.encode("utf-8")).hexdigest()


def figures_out(text: str) -> str:
    """`text` without what measured figures change: every number (sign, decimals, exponent)
    becomes '#', the spaces that align it in a table one space, and the ';'/':'-separated
    clauses of each line are sorted (a comparison line lists metrics by the size of their
    change, so a runtime's change moves its clause)."""
    lines = (_SPACES.sub(" ", line) for line in _FIGURE.sub("#", text).split("\n"))
    return "\n".join(";".join(sorted(_CLAUSE.split(line))) for line in lines)


def drift_notice(count: int) -> str:
    return (f"replay: {count} prompt{'s' if count != 1 else ''} differed from the recording "
            "in figures only (measured times, say); their recorded answers were used")


def _usage_json(usage: LLMUsage) -> dict[str, Any]:
    return {"model": usage.model, "prompt_tokens": usage.prompt_tokens,
            "completion_tokens": usage.completion_tokens, "cost_usd": usage.cost_usd,
            "calls": usage.calls}


class RecordingClient:
    """Passes requests to `inner` and appends every exchange to `path` (flushed at once)."""

    def __init__(self, inner: LLMClient, path: Path) -> None:
        self._inner = inner
        path.parent.mkdir(parents=True, exist_ok=True)
        self._file: IO[str] = path.open("a", encoding="utf-8")

    async def complete(self, request: LLMRequest) -> LLMReply:
        reply = await self._inner.complete(request)
        line = {"candidate_id": request.candidate_id, "attempt": request.attempt,
                "request_sha256": request_digest(request), "shape": request_shape(request),
                "text": reply.text, "usage": _usage_json(reply.usage)}
        self._file.write(json.dumps(line) + "\n")
        self._file.flush()
        return reply

    def close(self) -> None:
        self._file.close()


class ReplayClient:
    """Answers from a recording; the last exchange recorded for a key wins. `drifted` holds
    the keys whose prompt differed from the recording in figures only."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._exchanges = load_recording(path)
        self.drifted: set[tuple[int, int]] = set()
        self._diverged = False

    def close(self) -> None:
        """Say on stderr how many prompts drifted (none: nothing; not after a mismatch,
        whose own line says what matters)."""
        if self.drifted and not self._diverged:
            print(f"adrs: {drift_notice(len(self.drifted))}", file=sys.stderr)
            self.drifted = set()

    async def complete(self, request: LLMRequest) -> LLMReply:
        key = (request.candidate_id, request.attempt)
        exchange = self._exchanges.get(key)
        if exchange is None:
            self._diverged = True
            raise ReplayMismatch(f"the recording '{self.path}' has no exchange for candidate "
                                 f"{key[0]} attempt {key[1]}: replay with the recorded run's "
                                 "seed and config, and no more iterations than it had")
        if exchange["request_sha256"] != request_digest(request):
            if exchange.get("shape") != request_shape(request):
                self._diverged = True
                raise self._diverged_error(key)
            self.drifted.add(key)
        usage = LLMUsage(**exchange["usage"])
        return LLMReply(str(exchange["text"]), usage)

    def _diverged_error(self, key: tuple[int, int]) -> ReplayMismatch:
        return ReplayMismatch(f"candidate {key[0]} attempt {key[1]} asks another prompt "
                              f"than the one recorded in '{self.path}': the run diverged; "
                              "replay with the recorded run's seed, config and problem")


def load_recording(path: Path) -> dict[tuple[int, int], dict[str, Any]]:
    if not path.is_file():
        raise UserError(f"replay file '{path}' does not exist: pass a file written with "
                        "--record")
    exchanges: dict[tuple[int, int], dict[str, Any]] = {}
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            data = json.loads(line)
            exchanges[(int(data["candidate_id"]), int(data["attempt"]))] = data
            LLMUsage(**data["usage"])
            str(data["text"]), str(data["request_sha256"])
        except (ValueError, KeyError, TypeError):
            raise UserError(f"replay file '{path}' line {number} is not a recorded exchange:"
                            " pass a file written with --record") from None
    return exchanges
