"""The README's commands and snippet work as written."""

from __future__ import annotations

import re
import shutil

from conftest import REPO

README = (REPO / "README.md").read_text()


def _python_blocks() -> list[str]:
    return re.findall(r"```python\n(.*?)```", README, flags=re.S)


def test_python_snippet_runs_as_written_twice_in_a_row(tmp_path, monkeypatch):
    (snippet,) = [block for block in _python_blocks() if "run_recipe" in block]
    shutil.copytree(REPO / "recipes", tmp_path / "recipes")
    monkeypatch.chdir(tmp_path)
    roots = []
    for _ in range(2):
        namespace: dict = {}
        exec(compile(snippet, "README.md", "exec"), namespace)
        assert namespace["codes"].shape == (8, namespace["sae"].d_sae)
        assert namespace["x_hat"].shape == namespace["x"].shape
        roots.append(namespace["run"].root)
    assert roots[0] != roots[1] and all((r / "model.safetensors").is_file() for r in roots)


def test_ci_runs_the_readme_main_job_and_test_command():
    ci = (REPO / ".ci" / "run").read_text()
    main_job = re.search(r"pip install -e \. && (hsae run \S+)", README).group(1)
    test_command = re.search(r"pip install -e '\.\[test\]' && (.+)$", README, flags=re.M).group(1).strip().rstrip("`")
    assert re.search(rf"^{re.escape(main_job)}$", ci, flags=re.M), main_job
    assert re.search(rf"^{re.escape(test_command)}$", ci, flags=re.M), test_command
