"""Choosing a model per candidate: weighted random choice, or an adaptive bandit.

Each candidate's model is drawn once, with a generator seeded by (seed, candidate id), and
its repair attempts go to the same model. `adaptive` is Thompson sampling on "this candidate
improved the archive" (a new or better cell), divided by the model's mean cost per
candidate, so the mix moves toward the models that improve the archive per dollar.

Its state is derived from stored records only (the controller calls `observe` for every
applied record, live and when a resumed run replays the store), so it survives resume. In
deterministic mode a candidate only uses the records below its sampling point (the request's
`sampled_after`: every lower id was applied, in id order, when it was sampled; see
adrs/engine/schedule.py), so the choice does not depend on timing. A request without one
(a direct caller) uses the records with id <= i - depth.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from adrs.engine.archive import AddStatus
from adrs.llm.mutator import LLMClient, LLMReply, LLMRequest
from adrs.store.database import CandidateRecord

_IMPROVING = (AddStatus.NEW, AddStatus.IMPROVED)
_FREE_FLOOR = 1e-3  # a free model's cost counts as this share of the dearest one's


@dataclass(frozen=True)
class Outcome:
    """What one stored candidate says about the model that proposed it."""

    candidate_id: int
    improved: bool
    cost_usd: float


@dataclass(frozen=True)
class Arm:
    """One model of the ensemble."""

    name: str
    weight: float
    client: LLMClient


class Ensemble:
    """An LLMClient that routes each candidate's requests to one of several models."""

    def __init__(self, arms: Sequence[Arm], *, mode: Literal["weighted", "adaptive"],
                 seed: int, depth: int, deterministic: bool = True) -> None:
        self.arms, self.mode = tuple(arms), mode
        self._seed, self._depth, self._deterministic = seed, depth, deterministic
        self._outcomes: dict[str, list[Outcome]] = {a.name: [] for a in self.arms}
        self._chosen: dict[int, int] = {}

    async def complete(self, request: LLMRequest) -> LLMReply:
        index = self._chosen.get(request.candidate_id)
        if index is None:
            index = self.choose(request.candidate_id, request.sampled_after)
            self._chosen[request.candidate_id] = index
        return await self.arms[index].client.complete(request)

    def observe(self, record: CandidateRecord, status: AddStatus | None) -> None:
        """Credit the model named by the record's usage with the archive's verdict."""
        self._chosen.pop(record.id, None)
        outcomes = self._outcomes.get(record.usage.model)
        if outcomes is not None:
            outcomes.append(Outcome(record.id, status in _IMPROVING, record.usage.cost_usd))

    def choose(self, candidate_id: int, sampled_after: int | None = None) -> int:
        rng = random.Random(f"{self._seed}:{candidate_id}:model")
        if self.mode == "adaptive":
            return self._thompson(self._visible(candidate_id, sampled_after), rng)
        return rng.choices(range(len(self.arms)), [a.weight for a in self.arms])[0]

    def shares(self, candidate_id: int, draws: int = 200) -> dict[str, float]:
        """The share of each model in `draws` choices as candidate `candidate_id` would
        make them (for reports and tests)."""
        counts = dict.fromkeys((a.name for a in self.arms), 0)
        for n in range(draws):
            rng = random.Random(f"{self._seed}:{candidate_id}:{n}:share")
            name = self.arms[self._thompson(self._visible(candidate_id), rng)
                             if self.mode == "adaptive"
                             else rng.choices(range(len(self.arms)),
                                              [a.weight for a in self.arms])[0]].name
            counts[name] += 1
        return {k: v / draws for k, v in counts.items()}

    def _visible(self, candidate_id: int,
                 sampled_after: int | None = None) -> dict[str, list[Outcome]]:
        if not self._deterministic:
            return self._outcomes
        below = candidate_id - self._depth + 1 if sampled_after is None else sampled_after
        return {k: [o for o in v if o.candidate_id < below] for k, v in self._outcomes.items()}

    def _thompson(self, seen: dict[str, list[Outcome]], rng: random.Random) -> int:
        costs = _mean_costs(seen)
        best, best_value = 0, -1.0
        for index, arm in enumerate(self.arms):
            if arm.weight <= 0:
                continue
            outcomes = seen[arm.name]
            wins = sum(o.improved for o in outcomes)
            p = rng.betavariate(1 + wins, 1 + len(outcomes) - wins)
            value = arm.weight * p / costs[arm.name]
            if value > best_value:
                best, best_value = index, value
        return best


def _mean_costs(seen: dict[str, list[Outcome]]) -> dict[str, float]:
    """Mean cost per candidate of each model, shrunk toward the ensemble's mean (one
    pseudo-observation) so a model without data is neither free nor penalised."""
    total = sum(o.cost_usd for v in seen.values() for o in v)
    count = sum(len(v) for v in seen.values())
    prior = total / count if count else 0.0
    means = {k: (sum(o.cost_usd for o in v) + prior) / (len(v) + 1) for k, v in seen.items()}
    top = max(means.values(), default=0.0)
    if top <= 0:
        return dict.fromkeys(means, 1.0)  # nothing costs anything: compare success alone
    return {k: max(v, top * _FREE_FLOOR) for k, v in means.items()}
