from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from adrs.errors import UserError
from adrs.problem.spec import discover, load_problem, locate


def test_bundled_toy_problem_loads(toy_root: Path) -> None:
    problem = load_problem("toy")
    assert problem.root == toy_root.resolve() and problem.name == "toy"
    assert "provision" in problem.task and "EVOLVE-BLOCK-START" in problem.initial_code
    assert [f.name for f in problem.spec.features] == ["code_length", "complexity"]
    assert "toy" in discover()


def test_the_task_statement_and_the_readme_are_separate_files(toy_root: Path) -> None:
    problem = load_problem("toy")
    assert problem.spec.task == "TASK.md" and not problem.task_is_readme
    assert problem.task == (toy_root / "TASK.md").read_text(encoding="utf-8")
    assert problem.task_path == toy_root.resolve() / "TASK.md"
    assert problem.readme_path == toy_root.resolve() / "README.md"
    assert "adrs run" in problem.readme_path.read_text() and "adrs run" not in problem.task


def test_a_folder_without_a_task_file_uses_its_readme(toy_root: Path, tmp_path: Path) -> None:
    # Problems written before the split (third-party ones) keep working: README.md, or the
    # file 'readme' names, is then the task statement.
    folder = tmp_path / "old"
    shutil.copytree(toy_root, folder)
    yaml = folder / "problem.yaml"
    yaml.write_text("".join(line for line in yaml.read_text().splitlines(keepends=True)
                            if not line.startswith("task:")))
    (folder / "TASK.md").rename(folder / "README.md")
    problem = load_problem(str(folder))
    assert problem.spec.task is None and problem.task_is_readme
    assert "provision" in problem.task and problem.task_path == folder.resolve() / "README.md"
    (folder / "README.md").rename(folder / "STATEMENT.md")
    yaml.write_text(yaml.read_text() + "readme: STATEMENT.md\n")
    assert "provision" in load_problem(str(folder)).task


def test_a_folder_path_is_accepted(toy_root: Path, tmp_path: Path) -> None:
    shutil.copytree(toy_root, tmp_path / "mine")
    assert locate(str(tmp_path / "mine")) == (tmp_path / "mine").resolve()


@pytest.mark.parametrize(("edit", "message"), [
    (lambda d: (d / "TASK.md").unlink(), "no task statement 'TASK.md'"),
    (lambda d: (d / "initial_program.py").unlink(), "no initial program"),
    (lambda d: (d / "problem.yaml").write_text("name: x\ndescription: y\nevaluator: nocolon\n"),
     "'evaluator' must look like"),
    (lambda d: (d / "problem.yaml").write_text("name: x\ndescription: y\nevaluator: a:b\n"
                                               "colour: red\n"), "unknown key 'colour'"),
    (lambda d: (d / "initial_program.py").write_text("x = 1\n"), "EVOLVE-BLOCK"),
])
def test_defects_are_one_clear_error(toy_root: Path, tmp_path: Path, edit: object,
                                     message: str) -> None:
    folder = tmp_path / "p"
    shutil.copytree(toy_root, folder)
    edit(folder)  # type: ignore[operator]
    with pytest.raises(UserError, match=message):
        load_problem(str(folder))


def test_unknown_name_lists_known_problems() -> None:
    with pytest.raises(UserError, match=r"known: .*toy"):
        locate("nope")


def test_a_bare_name_prefers_the_known_problem_over_a_stray_folder(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "toy").mkdir()  # e.g. unpacked data that happens to share the name
    monkeypatch.chdir(tmp_path)
    assert locate("toy") == load_problem("toy").root != (tmp_path / "toy").resolve()
    assert locate("./toy") == (tmp_path / "toy").resolve()
