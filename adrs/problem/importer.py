"""`adrs problems import`: an OpenEvolve or ShinkaEvolve problem folder as an adrs problem.

The folder shapes read (facts of the peers' published layouts):

- OpenEvolve: `initial_program.py` (EVOLVE-BLOCK markers), `evaluator.py` with
  `evaluate(program_path) -> dict` of metrics (usually with `combined_score`), optional
  cascade stages `evaluate_stage1`, `evaluate_stage2`, and `config.yaml`.
- ShinkaEvolve: `initial.py`, `evaluate.py` with `main(program_path, results_dir)` that writes
  `results_dir/metrics.json` (with `combined_score`; `public` metrics are passed through,
  `private` ones dropped) and optionally `correct.json` (`{"correct": bool, "error": str}`),
  or with `evaluate(program_path) -> dict` as OpenEvolve; an optional `config.yaml` whose
  keys may be flat or under `evo_config`, `db_config`, `job_config`.

A peer evaluator executes the candidate itself, so it cannot run on the trusted side: the
imported problem runs it inside the sandbox with the candidate (import_templates.HARNESS),
and a small generated trusted evaluator maps its metrics to a result. Such a problem is
`trust: self-scored`. Config keys with an adrs meaning become problem.yaml `defaults` (and
`cascade`); every other key is reported as ignored, with the reason.
"""

from __future__ import annotations

import ast
import importlib.util
import re
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from adrs.config.run_config import read_yaml, resolve
from adrs.errors import UserError
from adrs.problem import import_templates as tpl
from adrs.problem.spec import Problem, load_problem

KINDS = ("openevolve", "shinka")
LAYOUT = {"openevolve": ("initial_program.py", "evaluator.py"),
          "shinka": ("initial.py", "evaluate.py")}
CONFIG_NAMES = ("config.yaml", "config.yml")
MAX_PEER_FILE_BYTES = 1_000_000
CROSSOVER = 0.1  # adrs's default crossover_probability: diff + crossover <= 1

# Why common peer keys have no adrs meaning (any other key: "no adrs equivalent").
REASONS = {
    "log_level": "adrs logs to the run folder (events.jsonl)",
    "log_dir": "a run's outputs are in its run folder (--run-dir)",
    "checkpoint_interval": "adrs stores every candidate in SQLite; resume any time",
    "max_code_length": "the sandbox limits output and memory, not code length",
    "population_size": "the archive is a MAP-Elites grid per island, not a fixed population",
    "archive_size": "the archive keeps one elite per grid cell",
    "feature_dimensions": "features are problem.yaml `features` (metrics or built-ins)",
    "feature_bins": "set `bins` per feature in problem.yaml `features`",
    "migration_rate": "adrs migrates a count (archive.migration_size), not a rate",
    "elite_selection_ratio": "sampling is set by archive.exploit_ratio and elite_pool",
    "exploration_ratio": "sampling is set by archive.exploit_ratio",
    "db_path": "the run folder holds the database",
    "in_memory": "the run folder holds the database",
    "parallel_evaluations": "mapped as evaluation.workers",
    "use_llm_feedback": "adrs shows the evaluator's feedback, not an LLM judge",
    "llm_feedback_weight": "adrs has no LLM judge",
    "template_dir": "prompts are adrs's templates (prompts/)",
    "language": "adrs evolves Python programs",
    "job_type": "evaluations run in adrs's sandbox (--backend)",
    "init_program_path": "the initial program is copied as initial_program.py",
    "eval_program_path": "the evaluator is copied into the harness",
    "results_dir": "a run's outputs are in its run folder (--run-dir)",
}


@dataclass(frozen=True)
class ImportReport:
    """What `import_peer` wrote and decided."""

    problem: Problem
    kind: str
    mapped: tuple[str, ...]  # "peer key -> adrs key = value"
    ignored: tuple[tuple[str, str], ...]  # (peer key, reason)
    missing_imports: tuple[str, ...]  # modules the peer code imports that are not installed
    task_source: str


def detect(source: Path) -> str:
    """The peer whose layout `source` has; UserError if neither."""
    if not source.is_dir():
        raise UserError(f"'{source}' is not a folder: pass an OpenEvolve or ShinkaEvolve "
                        "problem folder")
    for kind, files in LAYOUT.items():
        if all((source / name).is_file() for name in files):
            return kind
    raise UserError(f"'{source}' is not an OpenEvolve or ShinkaEvolve problem folder: expected "
                    "initial_program.py + evaluator.py (OpenEvolve) or initial.py + evaluate.py "
                    "(ShinkaEvolve)")


def import_peer(source: Path, kind: str | None = None, dest: Path | None = None,
                name: str | None = None) -> ImportReport:
    """Convert the peer problem folder `source` into an adrs problem folder `dest/name`
    (default: `./<source folder name>`), validate it by loading it, and report."""
    source = source.resolve()
    kind = kind or detect(source)
    if kind not in KINDS:
        raise UserError(f"unknown peer {kind!r}: use one of {', '.join(KINDS)}")
    program_name, evaluator_name = LAYOUT[kind]
    for needed in (program_name, evaluator_name):
        if not (source / needed).is_file():
            raise UserError(f"'{source}' has no {needed}: it is not a {kind} problem folder")
    name = name or _problem_name(source.name)
    root = (dest or Path(".")) / name
    if root.exists() and (not root.is_dir() or any(root.iterdir())):
        raise UserError(f"'{root}' already exists: choose another --dir")
    config_path = next((source / n for n in CONFIG_NAMES if (source / n).is_file()), None)
    config = read_yaml(config_path, "peer config file") if config_path else {}
    peer_files = _peer_files(source, program_name)
    evaluator_text = peer_files[evaluator_name]
    entry = "main" if kind == "shinka" and _defines(evaluator_text, "main") \
        and not _defines(evaluator_text, "evaluate") else "evaluate"
    if not _defines(evaluator_text, entry):
        raise UserError(f"{source / evaluator_name} defines no '{entry}' function: the "
                        f"{kind} evaluator entry point is missing")
    mapper = _OpenEvolveConfig() if kind == "openevolve" else _ShinkaConfig()
    defaults, system_message = mapper.map(config)
    resolve([(f"{config_path}, as problem.yaml defaults", defaults)])  # before writing
    stages = _cascade(kind, config, evaluator_text, mapper)
    task, task_source = _task(source, system_message)
    program = (source / program_name).read_text(encoding="utf-8")
    missing = missing_imports([program, *peer_files.values()], set(_local_modules(source)))

    root.mkdir(parents=True, exist_ok=True)
    (root / "initial_program.py").write_text(program, encoding="utf-8")
    (root / "harness.py").write_text(tpl.HARNESS.format(
        kind=kind, evaluator_file=evaluator_name, program_file="program.py",
        peer_files=peer_files), encoding="utf-8")
    stage_lines = "".join(f"{stage} = _stage({stage!r})\n" for stage, _ in stages)
    (root / "evaluator.py").write_text(tpl.EVALUATOR.format(
        kind=kind, score_key=None, entry=entry, stages=stage_lines), encoding="utf-8")
    (root / "TASK.md").write_text(task, encoding="utf-8")
    spec: dict[str, Any] = {
        "name": name,
        "description": f"imported from {kind} ({source.name}); self-scored: the peer "
                       "evaluator runs in the sandbox",
        "evaluator": "evaluator.py:evaluate", "task": "TASK.md", "harness": "harness.py",
        "trust": "self-scored"}
    if stages:
        spec["cascade"] = [{"evaluator": f"evaluator.py:{stage}",
                            **({} if t is None else {"threshold": t})} for stage, t in stages]
    if defaults:
        spec["defaults"] = defaults
    (root / "problem.yaml").write_text(
        "# Generated by `adrs problems import`; see README.md for what was mapped and ignored.\n"
        + yaml.safe_dump(spec, sort_keys=False), encoding="utf-8")
    mapped = tuple(mapper.mapped) + tuple(
        f"evaluator.cascade_thresholds -> cascade: {stage} threshold {t}"
        for stage, t in stages)
    ignored = tuple(mapper.ignored)
    (root / "README.md").write_text(_readme(name, kind, source, mapped, ignored, missing,
                                            task_source), encoding="utf-8")
    problem = load_problem(str(root.resolve()))
    return ImportReport(problem=problem, kind=kind, mapped=mapped, ignored=ignored,
                        missing_imports=missing, task_source=task_source)


# ------------------------------------------------------------------------------- config
class _Mapper:
    def __init__(self) -> None:
        self.mapped: list[str] = []
        self.ignored: list[tuple[str, str]] = []
        self.defaults: dict[str, Any] = {}

    def put(self, peer_key: str, path: str, value: Any) -> None:
        node = self.defaults
        *parents, leaf = path.split(".")
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = value
        self.mapped.append(f"{peer_key} -> {path} = {value!r}")

    def ignore(self, key: str, value: Any, prefix: str = "") -> None:
        if isinstance(value, Mapping):
            for sub, item in value.items():
                self.ignore(str(sub), item, f"{prefix}{key}.")
            return
        self.ignored.append((f"{prefix}{key}", REASONS.get(key, "no adrs equivalent")))

    def models(self, peer_key: str, models: list[dict[str, Any]]) -> None:
        if models:
            self.put(peer_key, "llm.models", models)


def _model_name(name: str, api_base: str | None) -> str:
    """A litellm model name: a bare name behind an OpenAI-compatible api_base is `openai/`."""
    return name if "/" in name or api_base is None else f"openai/{name}"


class _OpenEvolveConfig(_Mapper):
    CASCADE_KEYS = ("cascade_evaluation", "cascade_thresholds")

    def map(self, config: Mapping[str, Any]) -> tuple[dict[str, Any], str | None]:
        system_message = None
        for key, value in config.items():
            if key == "max_iterations" and isinstance(value, int):
                self.put(key, "stop.iterations", max(1, value))
            elif key == "random_seed" and isinstance(value, int):
                self.put(key, "seed", value)
            elif key == "diff_based_evolution" and isinstance(value, bool):
                self.put(key, "llm.diff_probability", 1.0 - CROSSOVER if value else 0.0)
            elif key == "database" and isinstance(value, Mapping):
                self._database(value)
            elif key == "llm" and isinstance(value, Mapping):
                self._llm(value)
            elif key == "evaluator" and isinstance(value, Mapping):
                self._evaluator(value)
            elif key == "prompt" and isinstance(value, Mapping):
                for sub, item in value.items():
                    if sub == "system_message" and isinstance(item, str):
                        system_message = item
                        self.mapped.append("prompt.system_message -> TASK.md")
                    else:
                        self.ignore(str(sub), item, "prompt.")
            else:
                self.ignore(str(key), value)
        return self.defaults, system_message

    def _database(self, database: Mapping[str, Any]) -> None:
        for key, value in database.items():
            if key == "num_islands" and isinstance(value, int):
                self.put("database.num_islands", "archive.islands", max(1, value))
            elif key == "migration_interval" and isinstance(value, int):
                self.put("database.migration_interval", "archive.migration_interval",
                         max(1, value))
            elif key == "random_seed" and isinstance(value, int):
                self.put("database.random_seed", "seed", value)
            elif (key == "exploitation_ratio" and isinstance(value, int | float)
                  and 0.0 <= value <= 1.0):  # parent from the elites, else at random
                self.put("database.exploitation_ratio", "archive.exploit_ratio", float(value))
            else:
                self.ignore(str(key), value, "database.")

    def _llm(self, llm: Mapping[str, Any]) -> None:
        api_base = llm.get("api_base")
        common: dict[str, Any] = {}
        if isinstance(llm.get("temperature"), int | float):
            common["temperature"] = float(llm["temperature"])
        if isinstance(llm.get("max_tokens"), int):
            common["max_tokens"] = llm["max_tokens"]
        if isinstance(llm.get("top_p"), int | float):
            common["top_p"] = float(llm["top_p"])
        models = []
        for model in llm.get("models") or []:
            if isinstance(model, Mapping) and isinstance(model.get("name"), str):
                base = model.get("api_base", api_base)
                entry = {"name": _model_name(model["name"], base), **common,
                         **({"api_base": base} if base else {})}
                if isinstance(model.get("weight"), int | float):
                    entry["weight"] = float(model["weight"])
                models.append(entry)
        legacy = [] if models else [("primary_model", "primary_model_weight"),
                                    ("secondary_model", "secondary_model_weight")]
        for key, weight in legacy:  # older configs name two models instead of a list
            if isinstance(llm.get(key), str):
                models.append({"name": _model_name(llm[key], api_base), **common,
                               **({"api_base": api_base} if api_base else {}),
                               "weight": float(llm.get(weight) or 1.0)})
        self.models("llm.models (name, weight, temperature, api_base, max_tokens)", models)
        handled = {"models", "api_base", "temperature", "max_tokens", "top_p", "primary_model",
                   "primary_model_weight", "secondary_model", "secondary_model_weight"}
        for key, value in llm.items():
            if key == "timeout" and isinstance(value, int | float) and value > 0:
                self.put("llm.timeout", "llm.timeout_s", float(value))
            elif key == "retries" and isinstance(value, int) and value >= 0:
                self.put("llm.retries", "llm.max_retries", value)
            elif key == "api_key":
                self.ignored.append(("llm.api_key", "adrs reads keys from the environment "
                                     "(llm.models[].api_key_env), never from a config file"))
            elif key not in handled:
                self.ignore(str(key), value, "llm.")

    def _evaluator(self, evaluator: Mapping[str, Any]) -> None:
        for key, value in evaluator.items():
            if key == "timeout" and isinstance(value, int | float) and value > 0:
                self.put("evaluator.timeout", "evaluation.limits.timeout_s", float(value))
            elif key == "parallel_evaluations" and isinstance(value, int) and value >= 1:
                self.put("evaluator.parallel_evaluations", "evaluation.workers", value)
            elif key in self.CASCADE_KEYS:
                continue  # problem.yaml `cascade` (see _cascade)
            else:
                self.ignore(str(key), value, "evaluator.")


class _ShinkaConfig(_Mapper):
    def map(self, config: Mapping[str, Any]) -> tuple[dict[str, Any], str | None]:
        flat: dict[str, tuple[str, Any]] = {}
        for key, value in config.items():
            if key in ("evo_config", "db_config", "job_config") and isinstance(value, Mapping):
                flat.update({str(k): (f"{key}.{k}", v) for k, v in value.items()})
            else:
                flat[str(key)] = (str(key), value)
        system_message = None
        patch_types = flat.pop("patch_types", (None, None))[1]
        patch_probs = flat.pop("patch_type_probs", (None, None))[1]
        if isinstance(patch_types, list) and isinstance(patch_probs, list) \
                and len(patch_types) == len(patch_probs) and sum(patch_probs) > 0:
            share = {t: p / sum(patch_probs) for t, p in zip(patch_types, patch_probs,
                                                              strict=True)}
            self.put("patch_types/patch_type_probs", "llm.diff_probability",
                     round(share.get("diff", 0.0), 6))
            self.put("patch_types/patch_type_probs", "llm.crossover_probability",
                     round(share.get("cross", 0.0), 6))
        temperature, max_tokens = None, None
        for key, (where, value) in flat.items():
            if key == "num_generations" and isinstance(value, int):
                self.put(where, "stop.iterations", max(1, value))
            elif key == "num_islands" and isinstance(value, int):
                self.put(where, "archive.islands", max(1, value))
            elif key == "migration_interval" and isinstance(value, int):
                self.put(where, "archive.migration_interval", max(1, value))
            elif key == "task_sys_msg" and isinstance(value, str):
                system_message = value
                self.mapped.append(f"{where} -> TASK.md")
            elif key == "llm_kwargs" and isinstance(value, Mapping):
                temps = value.get("temperatures")
                if isinstance(temps, int | float):
                    temperature = float(temps)
                elif isinstance(temps, list) and temps:
                    temperature = float(sum(temps) / len(temps))
                for sub, item in value.items():
                    if sub == "max_tokens" and isinstance(item, int) and item >= 1:
                        max_tokens = item
                        continue
                    if sub != "temperatures":
                        self.ignore(str(sub), item, f"{where}.")
            elif key != "llm_models":
                self.ignore(where.rpartition(".")[2] if "." in where else key, value,
                            where.rpartition(".")[0] + "." if "." in where else "")
        names = flat.get("llm_models", ("", None))[1]
        if isinstance(names, str):
            names = [names]
        if isinstance(names, list):
            extra = {key: value for key, value in (("temperature", temperature),
                                                   ("max_tokens", max_tokens))
                     if value is not None}
            models = [{"name": n, **extra} for n in names if isinstance(n, str)]
            self.models("llm_models (+ llm_kwargs temperatures, max_tokens)", models)
        return self.defaults, system_message


def _cascade(kind: str, config: Mapping[str, Any], evaluator_text: str,
             mapper: _Mapper) -> list[tuple[str, float | None]]:
    """OpenEvolve's cascade: its `evaluate_stageN` functions as adrs cascade stages (before
    the full `evaluate`), with `cascade_thresholds[N-1]`."""
    if kind != "openevolve":
        return []
    section = config.get("evaluator")
    evaluator: Mapping[str, Any] = section if isinstance(section, Mapping) else {}
    enabled = evaluator.get("cascade_evaluation", True)
    thresholds = evaluator.get("cascade_thresholds") or []
    stages: list[tuple[str, float | None]] = []
    if not enabled:
        if "cascade_thresholds" in evaluator:
            mapper.ignored.append(("evaluator.cascade_thresholds",
                                   "cascade_evaluation is false"))
        return stages
    for number in (1, 2):
        name = f"evaluate_stage{number}"
        if _defines(evaluator_text, name):
            threshold = thresholds[number - 1] if len(thresholds) >= number else None
            stages.append((name, None if not isinstance(threshold, int | float)
                           else float(threshold)))
    if _defines(evaluator_text, "evaluate_stage3"):
        mapper.ignored.append(("evaluate_stage3", "adrs runs stages 1-2 as gates, then the "
                               "full `evaluate`"))
    return stages


# -------------------------------------------------------------------------------- files
def _peer_files(source: Path, program_name: str) -> dict[str, str]:
    """The peer's Python files the evaluator may need (all but the initial program)."""
    files = {}
    for path in sorted(source.glob("*.py")):
        if path.name == program_name:
            continue
        if path.stat().st_size > MAX_PEER_FILE_BYTES:
            raise UserError(f"{path} is larger than {MAX_PEER_FILE_BYTES} bytes: the harness "
                            "embeds the peer's Python files; move data out of it")
        files[path.name] = path.read_text(encoding="utf-8")
    return files


def _local_modules(source: Path) -> list[str]:
    return [p.stem for p in source.glob("*.py")] + [p.name for p in source.iterdir()
                                                   if (p / "__init__.py").is_file()]


def _defines(text: str, name: str) -> bool:
    try:
        tree = ast.parse(text)
    except SyntaxError:
        return False
    return any(isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and node.name == name
               for node in tree.body)


STAND_IN = "openevolve.evaluation_result"  # EvaluationResult: the harness stands in for it


def missing_imports(texts: list[str], local: set[str]) -> tuple[str, ...]:
    """Top-level modules the sources import that are neither stdlib, local nor installed."""
    found: set[str] = set()
    for text in texts:
        try:
            tree = ast.parse(text)
        except SyntaxError:
            continue
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                found.update(alias.name.split(".")[0] for alias in node.names)
            elif (isinstance(node, ast.ImportFrom) and node.level == 0 and node.module
                  and node.module != STAND_IN):  # the harness provides that one
                found.add(node.module.split(".")[0])
    missing = []
    for module in sorted(found - local - set(sys.stdlib_module_names)):
        try:
            installed = importlib.util.find_spec(module) is not None
        except (ImportError, ValueError):
            installed = False
        if not installed:
            missing.append(module)
    return tuple(missing)


def _problem_name(folder: str) -> str:
    name = re.sub(r"[^a-z0-9_-]+", "_", folder.lower()).strip("_-")
    return name if re.match(r"^[a-z]", name or "") else f"imported_{name}".rstrip("_")


def _task(source: Path, system_message: str | None) -> tuple[str, str]:
    if system_message and system_message.strip():
        return system_message.strip() + "\n", "the peer's system message"
    readme = source / "README.md"
    if readme.is_file() and readme.read_text(encoding="utf-8").strip():
        return readme.read_text(encoding="utf-8"), "the peer's README.md"
    return ("Improve the program between the EVOLVE-BLOCK markers so that the evaluator "
            "scores it higher (higher `combined_score` is better).\n",
            "a generic statement (the peer has no system message or README)")


def _readme(name: str, kind: str, source: Path, mapped: tuple[str, ...],
            ignored: tuple[tuple[str, str], ...], missing: tuple[str, ...],
            task_source: str) -> str:
    lines = [f"# {name} (imported from {kind})", "",
             f"Imported from `{source}` by `adrs problems import`. The task statement "
             f"(TASK.md) is {task_source}.", "",
             "## Trust: self-scored", "",
             "The peer evaluator executes the candidate itself, so it runs INSIDE the sandbox "
             "with the candidate (`harness.py` embeds its files); `evaluator.py` only maps its "
             "metrics to a result. The candidate cannot read your environment, the network or "
             "your files, but it can forge its own score. Move the scoring to a trusted "
             "evaluator before trusting results: see docs/coming-from-openevolve.md.", "",
             "## Run", "", "```bash", f"adrs problems check {name}",
             f"adrs run {name} --iterations 20            # offline mutator",
             f"adrs run {name} --llm litellm              # the models of defaults.llm", "```",
             "", "## Configuration mapped into problem.yaml", ""]
    lines += [f"- {line}" for line in mapped] or ["- (nothing)"]
    lines += ["", "## Configuration ignored", ""]
    lines += [f"- `{key}`: {reason}" for key, reason in ignored] or ["- (nothing)"]
    if missing:
        lines += ["", "## Not installed", "",
                  "The peer code imports these modules, which this environment lacks "
                  f"(install them): {', '.join(missing)}."]
    return "\n".join(lines) + "\n"
