"""Small OpenEvolve- and ShinkaEvolve-shaped problem folders, written by tests into tmp.

Both minimise f(x, y) = (x - 1)^2 + (y + 2)^2 with a program whose constants the offline
mutator can tune; each evaluator imports the program from its path, as the peers' do.
"""

from __future__ import annotations

from pathlib import Path

PROGRAM = '''"""Find the minimum of f(x, y) = (x - 1)^2 + (y + 2)^2."""
# EVOLVE-BLOCK-START
SCALE = 0.5
X0 = 3.0
Y0 = -3.0


def search():
    """A guess (x, y) at the minimiser."""
    return X0 * SCALE, Y0 * SCALE
# EVOLVE-BLOCK-END


def run_search():
    return search()
'''

OPENEVOLVE_EVALUATOR = '''import importlib.util
import math


def _guess(program_path):
    spec = importlib.util.spec_from_file_location("program", program_path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    x, y = module.run_search()
    return float(x), float(y)


def evaluate(program_path):
    try:
        x, y = _guess(program_path)
    except Exception as exc:
        return {"combined_score": 0.0, "error": str(exc)}
    value = (x - 1.0) ** 2 + (y + 2.0) ** 2
    if not math.isfinite(value):
        return {"combined_score": 0.0, "validity": 0.0}
    return {"combined_score": 1.0 / (1.0 + value), "value": value, "validity": 1.0}


def evaluate_stage1(program_path):
    x, y = _guess(program_path)
    return {"combined_score": 1.0 if math.isfinite(x + y) else 0.0}
'''

OPENEVOLVE_CONFIG = '''max_iterations: 50
random_seed: 42
log_level: INFO
diff_based_evolution: true
max_code_length: 10000
llm:
  api_base: https://api.openai.com/v1
  models:
    - {name: gpt-4o-mini, weight: 0.8}
    - {name: o3-mini, weight: 0.2}
  temperature: 0.7
  max_tokens: 4096
  timeout: 60
prompt:
  system_message: |
    You are an expert in numerical optimisation. Improve search() so that it returns a point
    (x, y) as close as possible to the minimum of f(x, y) = (x - 1)^2 + (y + 2)^2.
  num_top_programs: 3
database:
  population_size: 500
  num_islands: 3
  migration_interval: 20
  migration_rate: 0.1
evaluator:
  timeout: 30
  cascade_evaluation: true
  cascade_thresholds: [0.5]
  parallel_evaluations: 2
'''

SHINKA_EVALUATE = '''import importlib.util
import json
import os


def main(program_path, results_dir):
    spec = importlib.util.spec_from_file_location("program", program_path)
    module = importlib.util.module_from_spec(spec)
    correct, error, metrics = True, "", {"combined_score": 0.0}
    try:
        spec.loader.exec_module(module)
        x, y = module.run_search()
        value = (x - 1.0) ** 2 + (y + 2.0) ** 2
        metrics = {"combined_score": 1.0 / (1.0 + value), "public": {"value": value},
                   "private": {"x": x, "y": y}}
    except Exception as exc:
        correct, error = False, str(exc)
    with open(os.path.join(results_dir, "metrics.json"), "w") as handle:
        json.dump(metrics, handle)
    with open(os.path.join(results_dir, "correct.json"), "w") as handle:
        json.dump({"correct": correct, "error": error}, handle)


if __name__ == "__main__":
    main("initial.py", "results")
'''

SHINKA_CONFIG = '''evo_config:
  task_sys_msg: |
    Improve search() so that it returns a point (x, y) close to the minimum of
    f(x, y) = (x - 1)^2 + (y + 2)^2.
  num_generations: 30
  patch_types: [diff, full, cross]
  patch_type_probs: [0.6, 0.3, 0.1]
  llm_models: [gpt-4.1-mini, o4-mini]
  llm_kwargs: {temperatures: [0.0, 0.5, 1.0], max_tokens: 8192}
  max_parallel_jobs: 2
db_config:
  num_islands: 2
  archive_size: 40
  migration_interval: 10
job_config:
  eval_program_path: evaluate.py
'''


def openevolve_example(parent: Path, evaluator: str = OPENEVOLVE_EVALUATOR) -> Path:
    root = parent / "function_minimization"
    root.mkdir(parents=True)
    (root / "initial_program.py").write_text(PROGRAM)
    (root / "evaluator.py").write_text(evaluator)
    (root / "config.yaml").write_text(OPENEVOLVE_CONFIG)
    return root


def shinka_example(parent: Path) -> Path:
    root = parent / "shinka_minimize"
    root.mkdir(parents=True)
    (root / "initial.py").write_text(PROGRAM)
    (root / "evaluate.py").write_text(SHINKA_EVALUATE)
    (root / "config.yaml").write_text(SHINKA_CONFIG)
    (root / "README.md").write_text("# Minimise f\n\nA ShinkaEvolve example.\n")
    return root
