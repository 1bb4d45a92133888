"""The teacher-output store: hits give the losses of computing the teacher, a changed teacher
misses, damage is recomputed with a warning, augment_replay reuses augmentation, a resumed run
with the store equals an uninterrupted one, and `distill cache-teacher` fills what a run reads.
Every store lives in a tmp folder (conftest also points XDG_CACHE_HOME at one)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
import yaml

from distillcli.data import load_data
from distillcli.data.config import DataConfig
from distillcli.errors import OptionError
from distillcli.losses import KDOptions, make_objective
from distillcli.losses.specs import LossTerm
from distillcli.models.small_cnn import SmallCNN
from distillcli.models.classifier import ImageClassifier
from distillcli.record import comparable
from distillcli.steps.base import StepContext
from distillcli.teacher_cache.codec import TOPK, decode, encode
from tests.conftest import tiny_recipe

pytestmark = pytest.mark.usefixtures("one_thread")


def data(replay: int | None = None, **extra):
    cfg = DataConfig(name="synthetic", num_classes=4, image_size=16, train_size=96, val_size=32, batch_size=32,
                     augment="standard", augment_replay=replay, **extra)
    return load_data(cfg, device="cpu", seed=0)


def model(width: int, seed: int) -> torch.nn.Module:
    torch.manual_seed(seed)
    return ImageClassifier(SmallCNN(num_classes=4, width=width), [0.5] * 3, [0.5] * 3)


class Notes(list):
    def message(self, text: str) -> None:
        self.append(text)

    start = update = finish = lambda self, *a, **k: None


def losses(bundle, teacher, cache: Path | None, epochs: int = 2, mode: str = "auto", loss=None):
    """Per-batch KD losses of a fixed student over ``epochs`` epochs, and the step's store record."""
    notes = Notes()
    ctx = StepContext(device=torch.device("cpu"), data=bundle, progress=notes, cache_dir=cache)
    student = model(4, 1).eval()
    cfg = KDOptions(teacher_cache=mode)
    terms = loss or [LossTerm(kd={})]
    logits = ctx.teacher_logits(teacher, cfg, features=any(t.fitnet is not None for t in terms))
    objective = make_objective(terms, teacher, cfg, student=student, input_shape=bundle.input_shape, logits=logits)
    out = []
    with torch.no_grad():
        for epoch in range(epochs):
            bundle.train.set_epoch(epoch)
            objective.set_epoch(epoch)
            out += [objective(student, x, y, i)[0].item() for x, y, i in bundle.train]
    return out, ctx.teacher_cache, notes


def test_hits_give_the_losses_of_computing_the_teacher(tmp_path):
    bundle, teacher = data(), model(8, 0)
    first, rec1, _ = losses(bundle, teacher, tmp_path)
    again, rec2, _ = losses(bundle, teacher, tmp_path)
    assert (rec1.misses, rec1.hits, rec2.misses, rec2.hits) == (2, 0, 0, 2)
    assert again == first  # read from the store: exactly what computing gave
    assert rec2.teacher_seconds is None and rec1.teacher_seconds > 0  # the hits never ran the teacher
    assert rec1.disk_bytes == rec2.disk_bytes == sum(p.stat().st_size for p in tmp_path.rglob("aug-*.bin")) > 0
    off, rec_off, _ = losses(bundle, teacher, tmp_path, mode="off")
    assert rec_off.key is None and off == pytest.approx(first, rel=1e-3)  # float16 outputs, nearly float32's


def test_the_store_fills_and_reads_under_bf16_autocast(tmp_path):
    # bf16 training runs the objective under autocast; the CPU's cat used to refuse the stored fp16 arrays
    bundle, teacher = data(), model(8, 0)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        first, rec1, _ = losses(bundle, teacher, tmp_path)
        again, rec2, _ = losses(bundle, teacher, tmp_path)
    assert (rec1.misses, rec1.hits, rec2.misses, rec2.hits) == (2, 0, 0, 2)
    assert again == first and list(tmp_path.rglob("aug-*.bin"))  # read back: exactly what computing gave


def test_a_changed_teacher_misses(tmp_path):
    bundle, teacher = data(), model(8, 0)
    _, before, _ = losses(bundle, teacher, tmp_path, epochs=1)
    with torch.no_grad():
        next(teacher.parameters())[0].add_(0.01)
    _, after, _ = losses(bundle, teacher, tmp_path, epochs=1)
    assert after.key != before.key and (after.hits, after.misses) == (0, 1)
    _, other_data, _ = losses(data(val_split=0.1), model(8, 0), tmp_path, epochs=1)
    assert other_data.key not in (before.key, after.key) and other_data.misses == 1


@pytest.mark.parametrize("damage", ["flip", "truncate", "empty"])
def test_a_corrupt_entry_is_recomputed_with_a_warning(tmp_path, damage):
    bundle, teacher = data(), model(8, 0)
    expected, _, _ = losses(bundle, teacher, tmp_path, epochs=1)
    entry = next(tmp_path.rglob("aug-0.bin"))
    raw = bytearray(entry.read_bytes())
    if damage == "flip":
        raw[-5] ^= 0xFF
    entry.write_bytes(bytes(raw[: len(raw) // 2] if damage == "truncate" else b"" if damage == "empty" else raw))
    got, rec, notes = losses(bundle, teacher, tmp_path, epochs=1)
    assert (rec.hits, rec.misses) == (0, 1) and got == expected
    assert any("unusable" in n and "computing them again" in n for n in notes)
    _, rec, notes = losses(bundle, teacher, tmp_path, epochs=1)  # rewritten whole
    assert (rec.hits, rec.misses) == (1, 0) and not notes


def test_augment_replay_reuses_the_augmentation_of_epoch_e_mod_k():
    loader = data(replay=2).train

    def epoch(e: int) -> tuple[list[int], dict[int, torch.Tensor]]:
        loader.set_epoch(e)
        batches = list(loader)
        return torch.cat([i for _, _, i in batches]).tolist(), {int(i): x for b in batches for x, i in zip(b[0], b[2])}

    (o0, x0), (o1, x1), (o2, x2) = epoch(0), epoch(1), epoch(2)
    assert o0 != o2 and o0 != o1  # the order still shuffles every epoch
    assert all(torch.equal(x0[i], x2[i]) for i in x0)  # the same crop and flip per sample
    assert not all(torch.equal(x0[i], x1[i]) for i in x0)
    assert [loader.augment_epoch(e) for e in range(5)] == [0, 1, 0, 1, 0]


def test_a_long_replayed_run_pays_for_the_teacher_k_times(tmp_path):
    _, rec, _ = losses(data(replay=2), model(8, 0), tmp_path, epochs=5)
    assert (rec.misses, rec.hits) == (2, 3) and len(list(tmp_path.rglob("aug-*.bin"))) == 2


def test_feature_terms_compute_the_teacher_or_refuse(tmp_path):
    fitnet = [LossTerm(kd={}), LossTerm(fitnet={"teacher_layer": "net.stages", "student_layer": "net.stages"})]
    _, rec, notes = losses(data(), model(8, 0), tmp_path, epochs=1, loss=fitnet)
    assert rec.key is None and any("feature terms" in n for n in notes) and not list(tmp_path.rglob("*.bin"))
    with pytest.raises(OptionError, match="teacher_cache: required.*feature terms"):
        losses(data(), model(8, 0), tmp_path, epochs=1, mode="required", loss=fitnet)


def test_many_classes_keep_the_top_logits_and_the_rest_mass():
    logits = torch.randn(5, 300) * 3
    arrays = encode(logits)
    assert arrays["values"].shape == (5, TOPK) and arrays["values"].dtype == torch.float16
    back = decode(arrays, 300)
    top = logits.topk(TOPK, dim=1)
    assert torch.allclose(back.gather(1, top.indices), top.values, atol=1e-2)
    rest = 1 - logits.softmax(1).gather(1, top.indices).sum(1)
    assert torch.allclose(1 - back.softmax(1).gather(1, top.indices).sum(1), rest, atol=1e-3)


def resume_recipe() -> dict:
    return tiny_recipe(
        data={"name": "synthetic", "batch_size": 8, "train_size": 112, "val_size": 32, "num_classes": 4,
              "image_size": 16, "augment": "standard", "augment_replay": 2},
        steps=[{"train": {"model": "teacher", "epochs": 1, "lr": 0.05}}, {"distill": {"epochs": 3, "lr": 0.05}}],
        report={"latency": False}, checkpoint={"every_epochs": 1, "every_minutes": 1e-9})


def test_a_run_resumed_mid_epoch_with_the_store_equals_the_uninterrupted_one(tmp_path, monkeypatch):
    from distillcli.engine.pipeline import Pipeline
    from distillcli.progress import SilentProgress
    from distillcli.recipe import load_recipe
    from tests.core.test_resume import Kill, kill_at

    path = tmp_path / "r.yaml"
    path.write_text(yaml.safe_dump(resume_recipe()))

    def run(out: str, cache: str, **kw) -> dict:
        monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / cache))
        Pipeline(load_recipe(path), SilentProgress(), out=tmp_path / out, **kw).run()
        return json.loads((tmp_path / out / "metrics.json").read_text())

    expected = run("plain", "cache-a")
    with monkeypatch.context() as m:
        kill_at(m, "distill", 1, 13)  # after the checkpoint at batch 10 of the second epoch
        with pytest.raises(Kill):
            run("killed", "cache-b")
    got = run("killed", "cache-b", resume=True)
    assert comparable(got) == comparable(expected)
    # epoch 1 ran in two legs, so neither saw it whole: it was not stored (never a partial entry)
    assert [p.name for p in (tmp_path / "cache-b").rglob("aug-*.bin")] == ["aug-0.bin"]
    again = run("again", "cache-b")  # epochs 0 and 2 read from the store, epoch 1 computed
    assert (again["steps"][1]["teacher_cache"]["hits"], again["steps"][1]["teacher_cache"]["misses"]) == (2, 1)
    assert comparable(again) == comparable(expected)


def cli_json(*args: str) -> dict:
    """`distill ARGS --json` in this process (a fresh one costs seconds of imports)."""
    from typer.testing import CliRunner

    from distillcli.cli import app

    result = CliRunner().invoke(app, [*args, "--json"])
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def test_cache_teacher_fills_what_the_run_reads(tmp_path):
    teacher = tmp_path / "teacher.pth"
    torch.save(model(8, 0).net.state_dict(), teacher)  # a foreign checkpoint: a bare state_dict
    recipe = resume_recipe()
    recipe.update(teacher={"arch": "cnn", "args": {"width": 8}, "checkpoint": str(teacher)},
                  cache_dir=str(tmp_path / "store"),
                  steps=[{"evaluate": {"model": "teacher"}}, {"distill": {"epochs": 3, "lr": 0.05}}])
    path = tmp_path / "r.yaml"
    path.write_text(yaml.safe_dump(recipe))
    filled = cli_json("cache-teacher", str(path), "--batch-size", "64")
    assert (filled["misses"], filled["hits"], filled["augmentation_epochs"], filled["steps"]) == (2, 0, 2, [1])
    assert filled["disk_bytes"] > 0 and cli_json("cache-teacher", str(path))["hits"] == 2
    out = cli_json("run", str(path), "--out", str(tmp_path / "run"))
    metrics = json.loads((Path(out["run_dir"]) / "metrics.json").read_text())
    cache = metrics["steps"][1]["teacher_cache"]
    assert (cache["hits"], cache["misses"], cache["key"]) == (3, 0, filled["key"])
    assert "read 3 epoch(s) from the store" in (Path(out["run_dir"]) / "report.md").read_text()
