"""peftner as an installed package: the wheel, installed (not editable) into a fresh virtual environment
that reuses this environment's dependencies, runs train, compare, tune, suite, predict and export from a
directory outside the checkout, and writes only where it is told."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import REPO

pytestmark = pytest.mark.slow


def _run(argv, cwd, env, timeout=600):
    result = subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    assert result.returncode == 0, f"{argv[:4]}: exit {result.returncode}\n{result.stdout[-2000:]}\n{result.stderr[-3000:]}"
    return result


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    """A virtual environment with the wheel of this checkout installed; returns its python."""
    root = tmp_path_factory.mktemp("installed")
    source = root / "source"  # what the wheel is built from, copied: the build leaves nothing in the checkout
    source.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(REPO / name, source / name)
    shutil.copytree(REPO / "peftner", source / "peftner", ignore=shutil.ignore_patterns("__pycache__"))
    wheels = root / "wheels"
    _run([sys.executable, "-m", "pip", "wheel", str(source), "--no-deps", "--no-build-isolation", "-q",
          "-w", str(wheels)], cwd=root, env=os.environ.copy())
    venv = root / "venv"
    _run([sys.executable, "-m", "venv", "--system-site-packages", str(venv)], cwd=root, env=os.environ.copy())
    python = venv / "bin" / "python"
    wheel = next(wheels.glob("peftner-*.whl"))
    _run([str(python), "-m", "pip", "install", "-q", "--no-deps", "--force-reinstall", str(wheel)], cwd=root,
         env=os.environ.copy())
    return python


def test_every_command_works_installed_from_another_directory(installed, tmp_path, tiny_model, memorisable_files):
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}  # nothing of the checkout on the path
    env.update(OMP_NUM_THREADS="1", TOKENIZERS_PARALLELISM="false")
    work = tmp_path / "elsewhere"
    work.mkdir()
    where = _run([str(installed), "-c", "import peftner; print(peftner.__file__)"], work, env).stdout.strip()
    assert Path(where).is_relative_to(installed.parent.parent) and not Path(where).is_relative_to(REPO), where
    peftner = [str(installed), "-m", "peftner.cli"]
    data = ["--model", str(tiny_model), "--train-file", str(memorisable_files["train"]),
            "--validation-file", str(memorisable_files["validation"]), "--test-file", str(memorisable_files["test"])]
    fast = ["--batch-size", "8", "--keep-checkpoints", "0", "--threads", "1"]

    _run([*peftner, "train", "lora", *data, *fast, "--epochs", "1", "--output-dir", "run"], work, env)
    assert (work / "run" / "metrics.json").exists() and (work / "run" / "adapter" / "adapter_model.safetensors").exists()

    extra = " ".join([*data[2:], *fast])  # compare takes --model itself
    _run([*peftner, "compare", "--methods", "head", "--seeds", "1", "--epochs", "1", "--model", str(tiny_model),
          "--extra", extra, "--results-dir", "compared", "--name", "tiny"], work, env)
    assert (work / "compared" / "tiny" / "table.md").exists()
    assert (work / "compared" / "tiny" / "runs" / "head" / "size-all" / "seed-42" / "metrics.json").exists()

    _run([*peftner, "tune", "head", "--n-trials", "1", "--seeds", "1", "--budget-epochs", "1",
          "--extra", " ".join([*data, *fast]), "--results-dir", "tuned"], work, env)
    assert (work / "tuned" / "study.journal").exists() and (work / "tuned" / "table.md").exists()

    plan = tmp_path / "plan.yaml"  # the corpus files as flags, the model by its absolute path
    plan.write_text(f"seeds: 1\nextra: --epochs 1 {' '.join(fast)}\nentries:\n  - backbone: tiny\n"
                    f"    model: {tiny_model}\n    datasets: [{{mem: \"{' '.join(data[2:])}\"}}]\n    methods: [head]\n",
                    encoding="utf-8")
    _run([*peftner, "suite", str(plan)], work, env)
    assert "| head | 1 |" in (work / "results" / "suite" / "tables.md").read_text()

    _run([*peftner, "predict", "--adapter", "run/adapter", "--input", str(memorisable_files["test"]),
          "--output", "tags.jsonl"], work, env)
    assert (work / "tags.jsonl").read_text().count("\n") > 0
    _run([*peftner, "export", "--adapter", "run/adapter", "--output", "exported", "--merge"], work, env)
    assert any((work / "exported").glob("*.safetensors"))

    assert sorted(p.name for p in work.iterdir()) == ["compared", "exported", "results", "run", "tags.jsonl", "tuned"]
