"""The files `adrs problems import` writes next to an imported peer problem (importer.py).

HARNESS is loaded into the sandbox as module `harness`. The sandbox shows the harness FILE
only, not its folder, so the peer's Python files travel inside its text (`PEER_FILES`): at
each call it writes them and the candidate's source into the sandbox's working directory
(its own tmpfs), imports the peer evaluator from there, runs it on the candidate's file and
returns the metrics as plain data. It imports nothing from adrs (stdlib only).

EVALUATOR is the small trusted evaluator: it asks the harness for the peer's metrics, maps
the score metric to `score`, passes the other numeric metrics through and turns the peer's
error or invalid flags into an invalid result. The score itself is the peer's, computed in
the sandbox: such a problem is `trust: self-scored`.
"""

HARNESS = '''"""Runs the imported {kind} evaluator inside the sandbox, with the candidate (generated
by `adrs problems import`; the peer's files are embedded below, edit them there)."""

import importlib.util
import json
import math
import os
import sys

KIND = {kind!r}
EVALUATOR_FILE = {evaluator_file!r}
PROGRAM_FILE = {program_file!r}
PEER_FILES = {peer_files!r}


def _plain(value):
    item = getattr(value, "item", None)
    if type(value).__module__ == "numpy" and callable(item):
        try:
            value = item()
        except (TypeError, ValueError):
            return None
    if isinstance(value, bool | str):
        return value
    if isinstance(value, int | float):
        return value if math.isfinite(value) else str(value)
    return None


def _flatten(metrics, prefix=""):
    flat = {{}}
    for key, value in dict(metrics).items():
        if isinstance(value, dict):
            flat.update(_flatten(value, f"{{prefix}}{{key}}."))
            continue
        plain = _plain(value)
        if plain is not None:
            flat[f"{{prefix}}{{key}}"] = plain
    return flat


def _stand_in_for_openevolve():
    """Many OpenEvolve evaluators return `openevolve.evaluation_result.EvaluationResult`
    (metrics and artifacts). Where openevolve is not installed in the sandbox's Python,
    a minimal stand-in with that shape is registered, so such evaluators load."""
    if importlib.util.find_spec("openevolve") is not None:
        return
    import dataclasses
    import types

    @dataclasses.dataclass
    class EvaluationResult:
        metrics: dict
        artifacts: dict = dataclasses.field(default_factory=dict)

    package = types.ModuleType("openevolve")
    package.__path__ = []
    module = types.ModuleType("openevolve.evaluation_result")
    module.EvaluationResult = EvaluationResult
    package.evaluation_result = module
    sys.modules["openevolve"] = package
    sys.modules["openevolve.evaluation_result"] = module


def _load_peer():
    if KIND == "openevolve":
        _stand_in_for_openevolve()
    workdir = os.getcwd()
    for name, text in PEER_FILES.items():
        with open(os.path.join(workdir, name), "w", encoding="utf-8") as handle:
            handle.write(text)
    if workdir not in sys.path:
        sys.path.insert(0, workdir)
    module = sys.modules.get("_adrs_peer_evaluator")
    if module is None:
        spec = importlib.util.spec_from_file_location(
            "_adrs_peer_evaluator", os.path.join(workdir, EVALUATOR_FILE))
        module = importlib.util.module_from_spec(spec)
        sys.modules["_adrs_peer_evaluator"] = module
        spec.loader.exec_module(module)
    return module


def run_peer_evaluator(entry, source):
    """The metrics (a flat str-keyed dict of plain values) of the peer evaluator's function
    `entry` on the program `source`."""
    peer = _load_peer()
    program = os.path.join(os.getcwd(), PROGRAM_FILE)
    with open(program, "w", encoding="utf-8") as handle:
        handle.write(source)
    function = getattr(peer, entry, None)
    if function is None:
        raise RuntimeError(f"the peer evaluator {{EVALUATOR_FILE}} has no function {{entry!r}}")
    if KIND == "shinka" and entry == "main":
        results = os.path.join(os.getcwd(), "results")
        os.makedirs(results, exist_ok=True)
        function(program, results)
        return _read_shinka(results)
    raw = function(program)
    raw = getattr(raw, "metrics", raw)  # an EvaluationResult-like object: its metrics
    if not isinstance(raw, dict):
        raise RuntimeError(f"the peer evaluator returned {{type(raw).__name__}}, not a dict "
                           "of metrics")
    return _flatten(raw)


def _read_shinka(results):
    path = os.path.join(results, "metrics.json")
    if not os.path.isfile(path):
        raise RuntimeError("the peer evaluator wrote no metrics.json")
    with open(path, encoding="utf-8") as handle:
        metrics = json.load(handle)
    flat = _flatten({{k: v for k, v in metrics.items() if k != "private"}})
    correct = os.path.join(results, "correct.json")
    if os.path.isfile(correct):
        with open(correct, encoding="utf-8") as handle:
            verdict = json.load(handle)
        flat["correct"] = bool(verdict.get("correct", True))
        if verdict.get("error"):
            flat["error"] = str(verdict["error"])
    return flat
'''

EVALUATOR = '''"""Trusted side of an imported {kind} problem (generated by `adrs problems import`).

The peer evaluator runs INSIDE the sandbox with the candidate (harness.py): the score below
is the peer's number, which a candidate could forge (problem.yaml: trust: self-scored).
See docs/coming-from-openevolve.md to move the scoring here, out of the candidate's reach.
"""

import math

SCORE_KEY = {score_key!r}  # the metric that becomes the score (None: the only numeric one)
INVALID_FLAGS = ("valid", "validity", "correct", "is_valid")  # false or 0: invalid


def result(metrics):
    """The adrs result of the peer's metrics (a dict of plain values)."""
    if not isinstance(metrics, dict):
        return {{"valid": False, "error": f"peer evaluator returned {{type(metrics).__name__}}"}}
    error = metrics.get("error")
    numeric = {{key: float(value) for key, value in metrics.items()
               if isinstance(value, int | float) and not isinstance(value, bool)
               and math.isfinite(value)}}
    others = {{key: value for key, value in metrics.items()
              if isinstance(value, bool | str) and key != "error"}}
    for flag in INVALID_FLAGS:
        if flag in metrics and not metrics[flag]:
            why = f": {{error}}" if error else ""
            return {{"valid": False, "error": f"the peer evaluator marked the program invalid "
                     f"({{flag}}={{metrics[flag]}}){{why}}", "metrics": {{**numeric, **others}}}}
    if isinstance(error, str) and error.strip():
        return {{"valid": False, "error": f"peer evaluator: {{error}}",
                "metrics": {{**numeric, **others}}}}
    key = SCORE_KEY if SCORE_KEY is not None else (
        "combined_score" if "combined_score" in numeric else
        next(iter(numeric)) if len(numeric) == 1 else None)
    if key is None or key not in numeric:
        return {{"valid": False, "metrics": {{**numeric, **others}},
                "error": f"the peer evaluator returned no numeric {{key or 'combined_score'}} "
                         f"(metrics: {{sorted(metrics)}}); set SCORE_KEY in evaluator.py"}}
    score = numeric.pop(key)
    return {{"score": score, "metrics": {{**numeric, **others}}}}


def _stage(entry):
    def evaluate(candidate):
        return result(candidate.call("harness.run_peer_evaluator", entry, candidate.source))
    evaluate.__name__ = entry
    return evaluate


evaluate = _stage({entry!r})
{stages}'''
