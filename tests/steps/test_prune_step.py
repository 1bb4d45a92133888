"""The prune step: options, channel / unstructured runs, schedules, reloading pruned files, recipes."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
import torch
from pydantic import ValidationError
from torch import nn

from distillcli.modelfile import file_header, save_model
from distillcli.data import load_data
from distillcli.data.config import DataConfig
from distillcli.models.build import build_model
from distillcli.models.handle import ArchSpec, ModelHandle
from distillcli.engine.pipeline import Pipeline
from distillcli.progress import SilentProgress
from distillcli.recipe import load_recipe
from distillcli.steps import STEPS, StepContext
from distillcli.steps.prune import PruneConfig
from tests.conftest import tiny_recipe


pytestmark = pytest.mark.usefixtures("one_thread")  # tiny tensors: one thread is faster and immune to load


@pytest.fixture(scope="module")
def data():
    cfg = DataConfig(name="synthetic", num_classes=4, image_size=16, train_size=64, val_size=32, batch_size=16)
    return load_data(cfg, device=torch.device("cpu"), seed=0, channels_last=False)


def handle(name: str, keep_blocks: int | None = None, **kwargs) -> ModelHandle:
    torch.manual_seed(0)
    spec = ArchSpec(name, 4, 3, [0.5] * 3, [0.25] * 3, kwargs, keep_blocks)
    return ModelHandle(build_model(spec), spec)


def run(model: ModelHandle, data, **options):
    ctx = StepContext(device=torch.device("cpu"), data=data)
    return STEPS.get("prune").run(model, ctx, PruneConfig(**options))


@pytest.mark.parametrize("options, message", [
    ({}, "exactly one"),
    ({"sparsity": 0.5, "target_mac_reduction": 2.0}, "exactly one"),
    ({"sparsity": 0.0}, "greater than 0"),
    ({"sparsity": 1.0}, "less than 1"),
    ({"target_mac_reduction": 1.0}, "greater than 1"),
    ({"sparsity": 0.5, "overrides": {"net.*": 1.0}}, "override ratios"),
    ({"method": "unstructured", "target_mac_reduction": 2.0}, "zeroes single weights"),
    ({"method": "unstructured", "sparsity": 0.5, "importance": "taylor"}, "magnitude"),
    ({"sparsity": 0.5, "schedule": "gradual", "finetune": {"epochs": 1}}, "unstructured"),
    ({"method": "unstructured", "sparsity": 0.5, "schedule": "gradual"}, "finetune.epochs"),
    ({"sparsity": 0.5, "importance": "l3"}, "importance"),
    ({"sparsity": 0.5, "typo": 1}, "Extra inputs"),
])
def test_bad_options_are_rejected(options: dict, message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        PruneConfig(**options)


def test_mac_target_is_hit_and_reported(data) -> None:
    model = handle("resnet8")
    # unrounded: ResNet-8's 16-channel layers rounded to 8 can only halve, too coarse for a 10 % tolerance
    out = run(model, data, target_mac_reduction=2.0, latency=True, round_to=None)
    info = out.info
    assert 1.9 < info.mac_reduction < 2.2  # the nearest plan
    assert info.macs_before / info.macs_after == info.mac_reduction
    assert info.params_after < info.params_before and 0 < info.ratio < 0.5
    assert None not in (info.speedup_b1, info.speedup_b64) and info.latency_ms_before and info.latency_ms_after
    assert out.model.info.pruning.method == "channel"
    assert out.model.module(torch.rand(2, 3, 16, 16)).shape == (2, 4)
    assert model.module.net.conv1.out_channels == 16  # the input model is untouched


def test_a_mac_target_between_two_rounded_plans_takes_the_nearer_and_names_the_other(data) -> None:
    """Rounding moves MACs in steps (ResNet-20 rounded to 8: 1.38x, then 2.24x). Of the two plans
    around the target the nearer by ratio is taken, and the other is recorded."""
    options = dict(round_to=16, latency=False)
    two = run(handle("resnet20"), data, target_mac_reduction=2.0, **options).info
    assert two.mac_reduction >= 2.0 > two.other_plan_reduction > 1.0  # 2.24x is nearer 2x than 1.38x
    low, high = two.other_plan_reduction, two.mac_reduction
    between = (low * high) ** 0.5 * 0.97  # just nearer the milder plan
    milder = run(handle("resnet20"), data, target_mac_reduction=between, **options).info
    assert milder.mac_reduction == pytest.approx(low) and milder.other_plan_reduction == pytest.approx(high)
    assert milder.params_after > two.params_after


def test_finetune_distils_from_the_unpruned_model(data) -> None:
    out = run(handle("resnet8"), data, sparsity=0.5, latency=False, finetune={"epochs": 2, "lr": 0.05})
    assert [row.epoch for row in out.curve] == [1, 2]
    assert out.info.top1_before_finetune is not None and out.curve[-1].test_top1 is not None
    assert abs(out.info.sparsity - 0.5) < 0.1


def test_iterative_channel_pruning(data) -> None:
    out = run(handle("cnn", width=16), data, channel_ratio=0.5, schedule="iterative", iterations=2, latency=False,
              finetune={"epochs": 1})
    assert len(out.info.ratios) == 2 and len(out.curve) == 2
    convs = [m.out_channels for m in out.model.module.modules() if isinstance(m, nn.Conv2d)]
    assert convs == [8, 16, 32]  # half of 16, 32, 64 after two rounds


def test_iterative_mac_target(data) -> None:
    out = run(handle("resnet8"), data, target_mac_reduction=3.0, schedule="iterative", iterations=2, latency=False,
              round_to=None)  # unrounded: see test_mac_target_is_hit_and_reported
    assert 2.8 < out.info.mac_reduction < 3.4 and len(out.info.ratios) == 2  # the nearest plan, either side


def test_unstructured_gradual(data) -> None:
    out = run(handle("resnet8"), data, method="unstructured", sparsity=0.7, schedule="gradual", frequency=1,
              finetune={"epochs": 2})
    info = out.info
    assert abs(info.sparsity - 0.7) < 1e-3 and info.sparse_bytes < 0.6 * info.dense_bytes
    assert info.mac_reduction == 1.0 and "not faster" in info.note
    assert len(out.curve) == 2


def test_unstructured_iterative_keeps_masks(data) -> None:
    out = run(handle("resnet8"), data, method="unstructured", sparsity=0.6, scope="global", schedule="iterative",
              iterations=2, latency=False, finetune={"epochs": 1})
    weights = [m.weight for m in out.model.module.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    zeros = sum(int((w == 0).sum()) for w in weights)
    assert abs(zeros / sum(w.numel() for w in weights) - 0.6) < 1e-3


def test_pruned_files_reload_in_a_fresh_process(data, tmp_path) -> None:
    """Pruned shapes (option-A shortcuts, depthwise groups, a truncated model) are rebuilt
    from the file's recorded structure and load with weights_only=True."""
    x = torch.rand(3, 3, 16, 16)
    torch.save(x, tmp_path / "x.pt")
    paths, expected = [], []
    cases = [(handle("resnet20"), {"net.layer3.*": 0.7}), (handle("mobilenetv2", width=0.5), {"net.blocks.1*": 0.7}),
             (handle("resnet20", keep_blocks=5), {}), (handle("resnet8", shortcut="B"), {"net.layer2.*": 0.2})]
    for i, (model, overrides) in enumerate(cases):
        out = run(model, data, sparsity=0.4, latency=False, overrides=overrides)
        header = file_header(out.model, class_names=data.class_names, input_shape=data.input_shape, data=data.spec)
        paths.append(str(save_model(tmp_path / f"m{i}.pt", out.model, header)))
        expected.append(out.model.module.eval()(x))
    code = (
        "import sys, torch\n"
        "from distillcli.modelfile import load_model\n"
        f"x = torch.load({str(tmp_path / 'x.pt')!r}, weights_only=True)\n"
        f"ys = [load_model(p).handle.module(x) for p in {paths!r}]\n"
        f"torch.save(ys, {str(tmp_path / 'ys.pt')!r})\n"
    )
    env = {**os.environ, "OMP_NUM_THREADS": "1"}  # the same kernels as this process, so bit-identical
    subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True, env=env)
    for got, want in zip(torch.load(tmp_path / "ys.pt", weights_only=True), expected, strict=True):
        assert torch.equal(got, want)


def test_recipe_prunes_a_copy_of_the_teacher_then_distils(write_recipe, tmp_path) -> None:
    recipe = tiny_recipe(
        student={"from": "teacher"},
        steps=[{"train": {"model": "teacher", "epochs": 1, "lr": 0.05}},
               {"prune": {"method": "channel", "target_mac_reduction": 2.0, "importance": "l1", "round_to": 2,
                          "finetune": {"epochs": 1}}},
               {"distill": {"epochs": 1, "lr": 0.02}}])
    r = load_recipe(write_recipe(recipe))
    result = Pipeline(r, SilentProgress(), out=tmp_path / "run").run()
    teacher, prune, distill = result.record.to_json()["steps"]
    assert prune["kind"] == "prune" and 1.9 < prune["info"]["mac_reduction"] < 2.1  # the nearest plan, either side
    assert prune["measures"]["macs"] < teacher["measures"]["macs"] / 1.9
    assert distill["measures"]["macs"] == prune["measures"]["macs"]
    assert (tmp_path / "run" / prune["model_file"]).is_file()
