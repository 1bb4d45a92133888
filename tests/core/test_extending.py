"""docs/extending.md's worked examples run as written: its files become a plugin package found
through Python entry points, and distill lists, validates and trains with the new loss and dataset."""

from __future__ import annotations

import json
import re
import tomllib
from pathlib import Path

import numpy as np
import yaml

from tests.conftest import run_cli

ROOT = Path(__file__).resolve().parents[2]
_FILE = re.compile(r"<!-- file: (?P<path>[\w./-]+) -->\n```\w*\n(?P<body>.*?)```", re.S)


def _plugin(tmp_path: Path) -> dict[str, str]:
    """The doc's files under ``tmp_path``, installed as pip would: the package and a dist-info folder
    whose entry_points.txt comes from the doc's pyproject.toml. Returns the environment to use it."""
    files = {m["path"]: m["body"] for m in _FILE.finditer((ROOT / "docs" / "extending.md").read_text())}
    assert {"my_distill_plugin/entries.py", "my_distill_plugin/logit_mse.py", "my_distill_plugin/npz_data.py",
            "pyproject.toml"} <= set(files)
    for name, body in files.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(body)
    (tmp_path / "my_distill_plugin" / "__init__.py").write_text("")
    project = tomllib.loads(files["pyproject.toml"])["project"]
    info = tmp_path / f"my_distill_plugin-{project['version']}.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {project['name']}\nVersion: {project['version']}\n")
    (info / "entry_points.txt").write_text("".join(
        f"[{group}]\n" + "".join(f"{name} = {ref}\n" for name, ref in points.items()) + "\n"
        for group, points in project["entry-points"].items()))
    return {"PYTHONPATH": f"{tmp_path}:{ROOT}", "OMP_NUM_THREADS": "1"}


def test_the_worked_examples_register_through_entry_points_and_train(tmp_path: Path) -> None:
    env = _plugin(tmp_path / "plugin")
    listed = run_cli("list", "losses", "--json", env=env)
    assert listed.returncode == 0, listed.stderr
    assert "logit_mse" in json.loads(listed.stdout)["losses"]
    assert "npz" in run_cli("list", "datasets", env=env).stdout
    rng = np.random.default_rng(0)
    labels = np.arange(192) % 2
    images = (rng.random((192, 8, 8, 3)) * 80 + labels[:, None, None, None] * 150).astype(np.uint8)
    np.savez(tmp_path / "images.npz", x_train=images[:128], y_train=labels[:128], x_test=images[128:],
             y_test=labels[128:])
    recipe = {"name": "plugin", "device": "cpu", "data": {"name": "npz", "root": "images.npz", "batch_size": 16},
              "teacher": {"arch": "cnn", "args": {"width": 4, "depth": 2}},
              "student": {"arch": "cnn", "args": {"width": 2, "depth": 2}},
              "steps": [{"train": {"model": "teacher", "epochs": 3, "lr": 0.1}},
                        {"distill": {"epochs": 3, "lr": 0.1, "loss": [{"ce": {}}, {"logit_mse": {"weight": 0.5}}]}}],
              "report": {"latency": False}}
    (tmp_path / "plugin.yaml").write_text(yaml.safe_dump(recipe))
    checked = run_cli("validate", str(tmp_path / "plugin.yaml"), env=env)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    ran = run_cli("run", str(tmp_path / "plugin.yaml"), "--out", str(tmp_path / "run"), "--quiet", env=env)
    assert ran.returncode == 0, ran.stderr
    record = json.loads((tmp_path / "run" / "metrics.json").read_text())
    distill = record["steps"][1]
    assert distill["kind"] == "distill" and len(distill["curve"]) == 3
    assert record["steps"][0]["measures"]["top1"] > 90, record["steps"][0]["measures"]  # the data reached the model
    assert distill["measures"]["top1"] > 90, distill["measures"]  # two separable classes: the terms train the student
    without = run_cli("validate", str(tmp_path / "plugin.yaml"))  # no plugin on the path: the names are unknown
    assert without.returncode == 2 and "logit_mse" in without.stderr
