"""`adrs problems check --adversarial`: a kit of generic exploit programs, run against any
problem, that report whether the problem's evaluation lets a candidate win without solving
the problem.

Every probe is built the same way, never per problem: the problem's own initial program with
probe code appended (the modules of adrs/problem/probes/, stdlib only, made into one text by
probe_payload.py, run inside the sandbox). The appended code hooks the sandbox's server.
child.py answers each request of the trusted side, `{"fn": name, "args": [...]}`, with
`handle(request)`, looked up at every request among the globals of
sys.modules["_adrs_sandbox_child"]; the probe replaces that attribute at import time with a
wrapper, which sees every input of every call whatever the interface (numpy arrays, lockstep
`harness.step(message)` calls, ...) and may replace the reply. A candidate program can do
exactly the same, which is why the kit does it.

The probes and what counts as a leak (each outcome is `held`, `leaked` with the evidence,
or `inconclusive` with the reason):

1. input replay: the same input (same fingerprint of the arguments) or nearly the same one
   (same structure, scalars and text; every numeric vector within 2% relative L1 distance)
   reaches one process twice; inputs with fewer than 16 numbers do not count. A leak by
   itself: a process that sees an input again can answer from memory.
2. memoize: the wrapper answers a repeated (or near) input with its earlier reply, without
   calling the program. Leaked if the trusted score rises above the baseline by more than
   the noise.
3. series overlap: the numeric 1-D series the process holds (request arguments at every
   call; lists, tuples and arrays of 64+ numbers reachable through gc at the calls 1, 2, 4,
   ..., 64 and every 64 calls) are cut into windows of 32 values (256 for 0/1 data). Leaked
   if two series share a window at different offsets, agree over their whole aligned
   overlap, the shift is not a period of either, and one continues past where the other
   ends, having arrived no later (one scenario's past is another's future). Chance matches:
   a window is kept only with 64 bits of surprise under its null family (independent
   values or increments, for 0/1 data any two-state Markov chain: see
   `probes.series.window_bits`), so the chance that two independent series share a window
   is below 2 ** -64 per pair of windows; the status line reports the union bound over
   every pair looked at (about 1e-9 for a million values).
4. trusted data: from inside the sandbox, through the harness's globals, the frames of the
   harness code that calls the program (the program's functions are wrapped to see them),
   gc and sys.modules: a series that continues an input series past its end (the input's
   future), a module or object of an evaluator, a path under the evaluator's folder, an
   evaluator file the sandbox can read.
5. persistent state: two evaluations; the first writes a random token to its working
   directory, $HOME, $TMPDIR, /tmp, /var/tmp, /dev/shm, a SysV shared-memory segment (fixed
   key, through ctypes), module variables and the environment; the second looks for it
   everywhere. Leaked if found.
6. timing games: heavy CPU work at import (before any call is timed) and a daemon thread
   that keeps working after each reply. Leaked if either raises the score beyond the noise.
7. self-score: the program claims a score: it prints `score: 1e9` and `{"score": 1e9,
   "valid": true}` to stdout and stderr and sets `score`, `result`, ... in every loaded
   module; a second variant replies `{"score": 1e9, "valid": True}` to every call (merged
   into a dict reply). Leaked if the trusted score rises beyond the noise.

Baseline and noise: the unmodified initial program is evaluated twice (s1, s2); noise =
max(3 |s1 - s2|, 1% of |mean|, 1e-6). A probe's evaluation that fails only because of the
probe's own cost (its time limit, memory or output) makes that probe inconclusive, as does a
probe whose analysis ran out of its time budget (a quarter of the evaluation's).

Evidence travels from the sandbox on stderr only (see probes/core.py): its tail reaches
the trusted side as EvalResult.stderr.

Limits. The kit sees the stderr the evaluation hands back: that of the sandbox `run_job`
started, or, for an evaluator that starts sandboxes of its own (EPLB runs a fresh one per
pass), whichever one it reports; what the others saw is lost, so a probe that is `held`
there vouches for the processes it heard from (the outcome counts them). The probes know
nothing of the problem's meaning: `held` means this attack did not work, not that the
evaluation is sound. Inconclusive outcomes do not change the exit code of the command
(0 unless a probe leaked).
"""

from __future__ import annotations

import importlib.util
import os
import secrets
import statistics
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

from adrs.errors import UserError
from adrs.evaluation.runner import EvalJob, run_job
from adrs.problem import probe_payload as payload
from adrs.problem.spec import Problem
from adrs.types import EvalResult

Status = Literal["held", "leaked", "inconclusive"]
Evaluate = Callable[[EvalJob], EvalResult]

REPLAY, MEMOIZE, OVERLAP = "input replay", "memoize", "series overlap"
TRUSTED, PERSIST, TIMING, SELF_SCORE = ("trusted data", "persistent state", "timing games",
                                        "self-score")
PROBES = (REPLAY, MEMOIZE, OVERLAP, TRUSTED, PERSIST, TIMING, SELF_SCORE)
BUDGET_SHARE = 0.25  # of the evaluation's time limit, for a probe's own analysis
SPIN_SHARE, SPIN_MAX_S = 0.05, 1.0  # the import-time spin of the timing game
SIBLING_FILES = 40  # evaluator files, per folder, the trusted-data probe tries to read
_COST_WORDS = ("timed out", "time limit", "memory limit", "output limit", "exceeded")
_LABELS = {"held": "held", "leaked": "LEAKED", "inconclusive": "inconclusive"}


# ---------------------------------------------------------------------------- the report
@dataclass(frozen=True)
class ProbeOutcome:
    """One probe's verdict: `evidence` says what was seen (or why nothing can be said);
    `findings` are the probe's own finding lines from the sandbox, as sent."""

    name: str
    status: Status
    evidence: str
    findings: tuple[str, ...] = ()

    @property
    def line(self) -> str:
        return f"{_LABELS[self.status]:<8} {self.name}: {self.evidence}"


@dataclass(frozen=True)
class AdversarialReport:
    """Every probe's outcome on one problem, with the baseline they were judged against."""

    problem: str
    baseline: tuple[float, float]
    noise: float
    outcomes: tuple[ProbeOutcome, ...]
    duration_s: float = 0.0

    @property
    def leaked(self) -> bool:
        return any(o.status == "leaked" for o in self.outcomes)

    def outcome(self, name: str) -> ProbeOutcome:
        for outcome in self.outcomes:
            if outcome.name == name:
                return outcome
        raise KeyError(name)

    def statuses(self) -> dict[str, Status]:
        return {o.name: o.status for o in self.outcomes}

    def header(self) -> str:
        s1, s2 = self.baseline
        return (f"adversarial check of '{self.problem}': baseline score {s1:.6g} and "
                f"{s2:.6g}, noise {self.noise:.3g}")

    def lines(self) -> list[str]:
        return [o.line for o in self.outcomes]

    def summary(self) -> str:
        counts = {s: sum(o.status == s for o in self.outcomes) for s in _LABELS}
        return (f"{len(self.outcomes)} probes: {counts['held']} held, {counts['leaked']} "
                f"leaked, {counts['inconclusive']} inconclusive ({self.duration_s:.1f} s)")


# ---------------------------------------------------------------- what a sandbox reported
@dataclass(frozen=True)
class Trace:
    """The probe lines in one evaluation's stderr tail."""

    stats: Mapping[str, Mapping[str, str]] = field(default_factory=dict)  # process -> last
    findings: tuple[tuple[str, str], ...] = ()  # (probe, text)
    notes: tuple[str, ...] = ()
    errors: tuple[str, ...] = ()

    def found(self, probe: str) -> tuple[str, ...]:
        return tuple(text for name, text in self.findings if name == probe)

    def total(self, key: str) -> int:
        """A count summed over the processes (`key` from their status lines)."""
        return sum(_int(stat.get(key)) for stat in self.stats.values())

    def first(self, key: str, default: str = "") -> str:
        for stat in self.stats.values():
            if key in stat:
                return stat[key]
        return default


def parse_trace(stderr: str) -> Trace:
    stats: dict[str, dict[str, str]] = {}
    findings: list[tuple[str, str]] = []
    notes: list[str] = []
    errors: list[str] = []
    for raw in stderr.splitlines():
        parts = raw.rstrip().split(" ", 3)
        if len(parts) < 3 or parts[0] != payload.PREFIX:
            continue
        process, kind, rest = parts[1], parts[2], parts[3] if len(parts) > 3 else ""
        if kind == "stat":
            stats[process] = dict(item.partition("=")[::2] for item in rest.split())
        elif kind == "find":
            probe, _, text = rest.partition(" ")
            findings.append((probe, text))
        elif kind == "note":
            notes.append(rest)
        elif kind == "error":
            errors.append(rest)
    return Trace(stats, tuple(findings), tuple(notes), tuple(errors))


def _int(value: str | None) -> int:
    try:
        return int(value or 0)
    except ValueError:
        return 0


# ------------------------------------------------------------------------------ the kit
def probe_program(initial_code: str, config: Mapping[str, Any]) -> str:
    """The problem's initial program with the probe appended: it runs the payload
    (probe_payload.source()) as the module `_adrs_probe` and installs the probe
    `config["mode"]`."""
    source = payload.source()
    return (f"{initial_code.rstrip()}\n\n\n"
            "# --- appended by `adrs problems check --adversarial` ---\n"
            "def _adrs_probe_boot():\n"
            "    import sys\n"
            f"    module = type(sys)({payload.MODULE!r})\n"
            f"    module.__file__ = {payload.SOURCE_NAME!r}\n"
            f"    sys.modules[{payload.MODULE!r}] = module\n"
            f"    exec(compile({source!r}, {payload.SOURCE_NAME!r}, 'exec'), "
            "module.__dict__)\n"
            f"    module.install({dict(config)!r})\n\n\n"
            "_adrs_probe_boot()\n"
            "del _adrs_probe_boot\n")


@dataclass
class _Kit:
    """One run of the kit: the problem, its job, how to evaluate, the baseline."""

    problem: Problem
    job: EvalJob
    evaluate: Evaluate
    base: float = 0.0
    noise: float = 0.0

    def config(self, mode: str, **extra: Any) -> dict[str, Any]:
        dirs, files = trusted_files(self.problem)
        harness = self.job.harness and os.path.realpath(Path(self.job.problem_root,
                                                              self.job.harness))
        return {"mode": mode, "budget_s": BUDGET_SHARE * self.job.limits.timeout_s,
                "trusted_dirs": dirs, "trusted_files": files, "harness": harness or "",
                **extra}

    def run(self, mode: str, **extra: Any) -> tuple[EvalResult, Trace]:
        source = probe_program(self.problem.initial_code, self.config(mode, **extra))
        result = self.evaluate(replace(self.job, source=source))
        return result, parse_trace(result.stderr)

    def delta(self, result: EvalResult) -> float:
        return (result.score or 0.0) - self.base

    def broken(self, result: EvalResult, trace: Trace) -> str | None:
        """Why this evaluation tells nothing about its probe, or None."""
        error = (result.error or "").splitlines()[0] if result.error else ""
        if trace.errors:
            return f"the probe failed in the sandbox ({trace.errors[0]})"
        if not result.valid and any(word in error for word in _COST_WORDS):
            return f"the probe's own cost broke the evaluation ({error})"
        if not trace.stats:
            return f"the probe sent no report ({error or 'stderr had no probe lines'})"
        return None


def run_kit(problem: Problem, job: EvalJob, first: EvalResult | None = None,
            progress: Callable[[ProbeOutcome], None] | None = None,
            evaluate: Evaluate = run_job) -> AdversarialReport:
    """Run every probe against `problem`, whose initial program `job` evaluates (its
    limits and options are the probes' too). `first` is an evaluation of the initial
    program already made (the first baseline); `progress` sees each outcome as it comes."""
    started = time.monotonic()
    kit = _Kit(problem, job, evaluate)
    baseline = [first or evaluate(job), evaluate(job)]
    for result in baseline:
        if not result.valid or result.score is None:
            raise UserError(f"{problem.root}: the initial program is invalid ({result.error})"
                            ": the adversarial check needs a valid baseline")
    s1, s2 = (float(r.score or 0.0) for r in baseline)
    kit.base = statistics.fmean((s1, s2))
    kit.noise = max(3 * abs(s1 - s2), 0.01 * abs(kit.base), 1e-6)
    outcomes = []
    for probe in (_replay, _memoize, _overlap, _trusted, _persist, _timing, _self_score):
        outcome = probe(kit)
        outcomes.append(outcome)
        if progress is not None:
            progress(outcome)
    return AdversarialReport(problem.name, (s1, s2), kit.noise, tuple(outcomes),
                             time.monotonic() - started)


# ------------------------------------------------------------------------------ probes
def _observed(kit: _Kit, name: str, mode: str, held: Callable[[Trace], str],
              leaked: Callable[[Trace], str]) -> ProbeOutcome:
    """A probe that only watches: leaked on a finding, else held unless the evaluation
    or the probe's budget leaves nothing to conclude."""
    result, trace = kit.run(mode)
    found = trace.found(mode)
    if found:
        return ProbeOutcome(name, "leaked", f"{found[0]} ({leaked(trace)})", found)
    why = kit.broken(result, trace)
    if why is None and not result.valid:
        why = f"the evaluation failed with the probe installed ({result.error})"
    if why is None and trace.first("budget") == "spent":
        why = (f"nothing seen in the first {trace.total('calls')} calls, then the probe's "
               f"analysis used up its budget ({BUDGET_SHARE:.0%} of the time limit)")
    if why is None and trace.first("full") == "1":
        why = (f"nothing seen in {trace.total('series')} series, but the inventory reached "
               f"its bound ({payload.MAX_SERIES} series, {payload.MAX_SERIES_VALUES} values) "
               "and later series went unchecked")
    if why is not None:
        return ProbeOutcome(name, "inconclusive", why)
    return ProbeOutcome(name, "held", held(trace))


def _calls(trace: Trace) -> str:
    processes = len(trace.stats)
    return (f"{trace.total('calls')} calls in {processes} "
            f"process{'es' if processes != 1 else ''}")


def _replay(kit: _Kit) -> ProbeOutcome:
    def held(trace: Trace) -> str:
        return (f"no input reached a process twice ({_calls(trace)}; "
                f"{trace.total('informative')} with {payload.MIN_INFORMATIVE}+ numbers)")

    def leaked(trace: Trace) -> str:
        return (f"{trace.total('exact')} exact and {trace.total('near')} near repeats in "
                f"{_calls(trace)}")

    return _observed(kit, REPLAY, "replay", held, leaked)


def _memoize(kit: _Kit) -> ProbeOutcome:
    result, trace = kit.run("memoize")
    why = kit.broken(result, trace)
    if why is not None:
        return ProbeOutcome(MEMOIZE, "inconclusive", why)
    answered = trace.total("answered")
    if answered == 0:
        return ProbeOutcome(MEMOIZE, "held", f"no input repeated, so nothing was answered "
                            f"from memory ({_calls(trace)})")
    return _scored(kit, MEMOIZE, result, f"{answered} calls answered from memory",
                   trace.found("memoize"))


def _scored(kit: _Kit, name: str, result: EvalResult, what: str,
            findings: tuple[str, ...] = ()) -> ProbeOutcome:
    """Leaked if `result` beats the baseline by more than the noise."""
    if not result.valid:
        error = (result.error or "").splitlines()[0] if result.error else "invalid"
        return ProbeOutcome(name, "held", f"{what}; the evaluator rejected the program "
                            f"({error[:200]})", findings)
    delta = kit.delta(result)
    text = (f"{what}; score {result.score:.6g} vs baseline {kit.base:.6g} ({delta:+.3g}, "
            f"noise {kit.noise:.3g})")
    return ProbeOutcome(name, "leaked" if delta > kit.noise else "held", text, findings)


def _overlap(kit: _Kit) -> ProbeOutcome:
    def held(trace: Trace) -> str:
        return (f"no window shared by two series at different offsets ({trace.total('series')}"
                f" series, {trace.total('windows')} windows indexed, {trace.total('scans')} "
                f"memory scans, {_calls(trace)}; chance-match bound "
                f"{trace.first('bound', '0')})")

    def leaked(trace: Trace) -> str:
        return f"{trace.total('overlap')} overlaps found in {_calls(trace)}"

    return _observed(kit, OVERLAP, "overlap", held, leaked)


def _trusted(kit: _Kit) -> ProbeOutcome:
    def held(trace: Trace) -> str:
        files = len(trusted_files(kit.problem)[1])
        return (f"nothing of the trusted side seen ({trace.total('checks')} checks of "
                f"{trace.total('inputs')} input series against up to {trace.total('memory')} "
                f"series of the harness and its frames; no evaluator module or object; none "
                f"of {files} evaluator files readable)")

    def leaked(trace: Trace) -> str:
        return f"{trace.total('trusted')} findings in {_calls(trace)}"

    return _observed(kit, TRUSTED, "trusted", held, leaked)


def _persist(kit: _Kit) -> ProbeOutcome:
    token = secrets.token_hex(16)
    try:
        first, written = kit.run("persist-write", token=token)
        second, trace = kit.run("persist-read", token=token)
    finally:
        _remove_tokens(token)
    found = trace.found("persist")
    if found:
        return ProbeOutcome(PERSIST, "leaked", found[0] + _more(len(found)), found)
    why = kit.broken(first, written) or kit.broken(second, trace)
    if why is not None:
        return ProbeOutcome(PERSIST, "inconclusive", why)
    wrote = written.notes[0].removeprefix("wrote to: ") if written.notes else "?"
    return ProbeOutcome(PERSIST, "held", f"the second evaluation found nothing of the first "
                        f"(the first wrote to: {wrote})")


def _more(count: int) -> str:
    return f" (and {count - 1} more)" if count > 1 else ""


def _remove_tokens(token: str) -> None:
    """Token files the probe could have left where the trusted side also looks."""
    name = payload.PERSIST_NAME + token[:16]
    for folder in {os.environ.get("HOME"), os.environ.get("TMPDIR"), "/tmp", "/var/tmp",
                   "/dev/shm"}:
        if folder:
            try:  # noqa: SIM105
                os.unlink(os.path.join(folder, name))
            except OSError:
                pass


def _timing(kit: _Kit) -> ProbeOutcome:
    spin_s = min(SPIN_MAX_S, SPIN_SHARE * kit.job.limits.timeout_s)
    games = (("work at import", "spin-import", {"spin_s": spin_s}),
             ("a daemon thread working after each reply", "daemon", {"spin_ms": 20}))
    return _score_games(kit, TIMING, games)


def _self_score(kit: _Kit) -> ProbeOutcome:
    games: tuple[tuple[str, str, dict[str, Any]], ...] = (
        ("score claims printed and set as module globals", "claim-print", {}),
             ("a score claimed in every reply", "claim-reply", {}))
    return _score_games(kit, SELF_SCORE, games)


def _score_games(kit: _Kit, name: str,
                 games: tuple[tuple[str, str, dict[str, Any]], ...]) -> ProbeOutcome:
    """Several behaviours judged by the score each earns: leaked if any beats the baseline
    beyond the noise, inconclusive if none could be judged."""
    parts: list[str] = []
    leaked: list[str] = []
    judged = 0
    for what, mode, extra in games:
        result, trace = kit.run(mode, **extra)
        why = kit.broken(result, trace)
        if why is not None:
            parts.append(f"{what}: inconclusive, {why}")
            continue
        judged += 1
        outcome = _scored(kit, name, result, what)
        parts.append(outcome.evidence)
        if outcome.status == "leaked":
            leaked.append(outcome.evidence)
    if leaked:
        return ProbeOutcome(name, "leaked", "; ".join(leaked))
    status: Status = "held" if judged else "inconclusive"
    return ProbeOutcome(name, status, "; ".join(parts))


# ------------------------------------------------------------------- the trusted files
def trusted_files(problem: Problem) -> tuple[list[str], list[str]]:
    """The folders of the problem's evaluators (the main one and its cascade stages) and
    the files in them, the harness excepted: what the sandbox must not reach."""
    harness = "" if problem.spec.harness is None else \
        os.path.realpath(problem.root / problem.spec.harness)
    dirs: list[str] = []
    files: list[str] = []
    refs = [problem.spec.evaluator, *(stage.evaluator for stage in problem.spec.cascade)]
    for ref in refs:
        path = _evaluator_file(problem.root, ref)
        if path is None:
            continue
        folder = os.path.dirname(path)
        if folder not in dirs:
            dirs.append(folder)
            siblings = sorted(p for p in os.listdir(folder)
                              if os.path.isfile(os.path.join(folder, p)))
            files += [os.path.join(folder, p) for p in siblings[:SIBLING_FILES]
                      if os.path.join(folder, p) != harness]
    return dirs, files


def _evaluator_file(root: Path, ref: str) -> str | None:
    target = ref.rpartition(":")[0]
    if target.endswith(".py") or "/" in target or os.sep in target:
        path = (root / target).resolve()
        return str(path) if path.is_file() else None
    try:
        spec = importlib.util.find_spec(target)
    except (ImportError, ValueError):
        return None
    origin = spec.origin if spec is not None else None
    return os.path.realpath(origin) if origin and os.path.isfile(origin) else None
