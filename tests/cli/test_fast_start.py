"""Commands that print help, list names or check a recipe start without importing torch, and
the names they know without torch are the ones the torch registries hold."""

from __future__ import annotations

import inspect
from pathlib import Path


from tests.conftest import run_in_one_process

ROOT = Path(__file__).resolve().parents[2]

def _names_absent_files(recipe: Path) -> bool:
    """The recipe points at data or a checkpoint that is not there (paths relative to its file)."""
    import yaml

    raw = yaml.safe_load(recipe.read_text())
    data = raw.get("data") or {}
    paths = [(raw.get(role) or {}).get("checkpoint") for role in ("teacher", "student")]
    paths += [] if data.get("download") else [data.get("root")]
    return any(p and not (recipe.parent / p).exists() for p in paths)


def test_help_list_schema_init_and_validate_do_not_import_torch(tmp_path: Path) -> None:
    import typer.main

    from distillcli.cli import app

    recipes = sorted(str(p) for p in (ROOT / "recipes").glob("*.yaml"))
    quickstart = str(ROOT / "recipes" / "quickstart.yaml")
    commands = ([["--help"], ["--version"]] + [["validate", r] for r in recipes] + [
        ["validate", quickstart, "--set", "teacher.arch=torchvision:resnet18"],  # the listed torchvision names
        ["validate", quickstart, "--set", "data.name=cifar1", "--set", "student.args.widht=2"],  # bad: exit 2
        ["list", "steps"], ["list", "losses"], ["list", "datasets"], ["list", "models", "resnet*"],
        ["schema"], ["schema", "--metrics"], ["init", str(tmp_path / "starter.yaml")],
        ["validate", str(tmp_path / "starter.yaml")],
    ])
    commands += [[name, "--help"] for name in sorted(typer.main.get_command(app).commands)]
    # the control: this one builds models, so torch must show up, or the check sees nothing
    *results, control = run_in_one_process(commands + [["list", "models", "cnn", "--details"]], tmp_path)
    assert control["code"] == 0 and control["torch"], control
    absent = {r for r in recipes if _names_absent_files(Path(r))}  # e.g. ../shared on a CI machine: exit 2
    for r in results:
        assert not r["torch"], f"`distill {' '.join(r['args'])}` imported torch"
        expected = {2} if "data.name=cifar1" in r["args"] else {0, 2} if set(r["args"]) & absent else {0}
        assert r["code"] in expected, r
    assert len(results) == len(commands)


def test_every_registry_entry_names_an_implementation_that_takes_its_options() -> None:
    """The torch-free entries are the only list of names: each points at its implementation, whose
    signature takes exactly the options the entry declares (what validate checks and list shows)."""
    from distillcli.data.registry import DATASETS
    from distillcli.losses.registry import LOSSES
    from distillcli.losses.specs import LossTerm
    from distillcli.losses.terms import Term
    from distillcli.models.registry import MODELS
    from distillcli.models.sources import SOURCES
    from distillcli.steps import STEPS

    def params(fn, *fixed: str) -> list[str]:
        return [p for p in inspect.signature(fn).parameters if p not in fixed]

    for entry in MODELS.entries():
        assert params(entry.load(), "num_classes", "in_channels", *entry.fixed) == list(entry.options.model_fields), \
            entry.name
    for entry in SOURCES.entries():  # (sources that pass other keys on take them as **args)
        assert [p for p in params(entry.load(), "name", "spec", "num_classes", "in_channels") if p != "args"] == \
            list(entry.options.model_fields), entry.name
    for entry in DATASETS.entries():
        assert params(entry.load()) == ["cfg", "device", "seed", "channels_last"], entry.name
    assert list(LossTerm.model_fields) == LOSSES.names()
    for entry in LOSSES.entries():
        term = entry.load()
        assert issubclass(term, Term) and params(term) == ["opts", "ctx"], entry.name
        assert inspect.signature(term).parameters["opts"].annotation == entry.options.__name__
    modules = {p.stem for p in (ROOT / "distillcli" / "steps").glob("*.py")} - {"__init__", "base", "options",
                                                                                 "registry"}
    assert set(STEPS.names()) == modules  # a step module no entry points at would never run
    for entry in STEPS.entries():
        fn = entry.load()
        assert fn.__name__ == entry.name and fn.__module__ == f"distillcli.steps.{entry.name}"
        assert inspect.signature(fn).parameters["cfg"].annotation == entry.config.__name__


def test_package_model_names_are_read_as_the_packages_list_them() -> None:
    import timm
    import torchvision

    from distillcli.models.package_names import timm_names, torchvision_names

    assert torchvision_names() == torchvision.models.list_models(module=torchvision.models)
    assert timm_names() == sorted(timm.list_models())


def test_no_second_list_of_registry_names_in_the_code() -> None:
    """A literal list, tuple or set holding two or more names of one registry, outside the registries,
    is a hand-kept copy that will drift (add the fact to the entry instead)."""
    import ast

    from distillcli.data.registry import DATASETS
    from distillcli.losses.registry import LOSSES
    from distillcli.models.registry import MODELS
    from distillcli.models.sources import SOURCES
    from distillcli.steps import STEPS

    registries = {"step": STEPS, "dataset": DATASETS, "loss": LOSSES, "model": MODELS, "model source": SOURCES}
    homes = {"registry.py", "sources.py"}
    found = []
    for path in sorted((ROOT / "distillcli").rglob("*.py")):
        if path.name in homes:
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, (ast.List, ast.Tuple, ast.Set)):
                words = {e.value for e in node.elts if isinstance(e, ast.Constant) and isinstance(e.value, str)}
                for kind, registry in registries.items():
                    named = sorted(w for w in words if w in registry)
                    if len(named) >= 2:
                        found.append(f"{path.relative_to(ROOT)}:{node.lineno}: {kind} names {named}")
    assert not found, "\n".join(found)
