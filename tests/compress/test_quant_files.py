"""Quantized models are files: .pt2 programs save with their header, reload in a fresh process,
and a .pt2 that could run code on load is refused before torch.export.load reads it."""

from __future__ import annotations

import copy
import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
import torch

from distillcli.facts import ModelFacts
from distillcli.modelfile import file_header, load_model, save_model
from distillcli.compress.export import ProgramModule
from distillcli.modelfile.pt2_check import safe_expression
from distillcli.compress.quantization import calibrate, convert, prepare
from distillcli.data import load_data
from distillcli.data.config import DataConfig
from distillcli.errors import ModelFileError
from distillcli.models.build import build_model
from distillcli.models.handle import ArchSpec, ModelHandle


@pytest.fixture(scope="module")
def saved(tmp_path_factory) -> tuple[Path, ProgramModule]:
    """An int8 program and the file it was saved to."""
    cfg = DataConfig(name="synthetic", num_classes=4, image_size=16, train_size=64, val_size=32, batch_size=32)
    data = load_data(cfg, device=torch.device("cpu"), seed=0)
    torch.manual_seed(0)
    spec = ArchSpec("cnn", 4, 3, data.mean, data.std, {"width": 8})
    model = build_model(spec).eval()
    example = next(iter(data.val))[0]
    prepared = prepare(copy.deepcopy(model), "static", example)
    calibrate(prepared, data.train, 2)
    handle = ModelHandle(ProgramModule(convert(prepared, example)), spec, "pt2", "int8", ModelFacts(method="static"))
    header = file_header(handle, class_names=data.class_names, input_shape=data.input_shape, data=data.spec,
                         metrics={"top1": 50.0})
    return save_model(tmp_path_factory.mktemp("q") / "model.pt", handle, header), handle.module


@pytest.fixture(scope="module")
def int8_file(saved) -> Path:
    return saved[0]


def test_int8_file_round_trip(saved) -> None:
    """Header and outputs survive the file (the fresh-process reload is in tests/cli/test_quant_cli.py)."""
    path, program = saved
    assert path.suffix == ".pt2"
    loaded = load_model(path)
    assert loaded.handle.precision == "int8" and loaded.class_names == ["class0", "class1", "class2", "class3"]
    assert loaded.metrics == {"top1": 50.0} and loaded.handle.info == ModelFacts(method="static")
    assert loaded.input_shape == (3, 16, 16) and loaded.handle.arch.kwargs == {"width": 8}
    images = torch.rand(3, 3, 16, 16, generator=torch.Generator().manual_seed(1))
    assert torch.equal(loaded.handle.module.uncompiled(images), program.uncompiled(images))


# A user's deployment in a fresh process: load with the package's loader and call the model.
_DEPLOY = """
import json, sys, torch
from torch._dynamo.utils import counters
from distillcli.modelfile import load_model
model = load_model(sys.argv[1]).handle.module
torch.save(model(torch.load(sys.argv[2], weights_only=True)), sys.argv[3])
print(json.dumps({"fusions": {k: v for k, v in counters["inductor"].items() if k.startswith(("qconv", "qlinear"))},
                  "first_call_s": model.first_call_s}))
"""


def test_int8_program_reloads_compiled_like_where_it_was_made(saved, tmp_path) -> None:
    """Regression: a fresh process compiled a loaded int8 program without inductor's int8 fusions
    (registered only by importing torchao's quantizer), so it ran dequantize -> float conv and was
    2.5x slower than in the quantizing process. Same fusions, same outputs, and the first-call
    (compile) time is reported."""
    from torch._dynamo.utils import counters

    path, program = saved
    images = torch.rand(8, 3, 16, 16, generator=torch.Generator().manual_seed(2))
    counters.clear()
    here = ProgramModule(program.program, compiled=True)
    expected = here(images)
    fusions_here = {k: v for k, v in counters["inductor"].items() if k.startswith(("qconv", "qlinear"))}
    # the cnn's three convolutions and its linear layer run as int8 kernels
    assert fusions_here["qconv_weight_prepack_matcher_count"] == 3
    assert fusions_here["qlinear_weight_prepack_matcher_count"] == 1
    torch.save(images, tmp_path / "images.pt")
    env = {**os.environ, "TORCHINDUCTOR_CACHE_DIR": str(tmp_path / "cache")}
    env.pop("DISTILL_COMPILE", None)
    proc = subprocess.run([sys.executable, "-c", _DEPLOY, str(path), str(tmp_path / "images.pt"),
                           str(tmp_path / "out.pt")], capture_output=True, text=True, env=env, timeout=600)
    assert proc.returncode == 0, proc.stderr
    fresh = json.loads(proc.stdout.strip().splitlines()[-1])
    assert fresh["fusions"] == fusions_here
    assert torch.allclose(torch.load(tmp_path / "out.pt", weights_only=True), expected, atol=1e-5)
    assert fresh["first_call_s"]["(8, 3, 16, 16)"] > 0


def _rewrite(source: Path, target: Path, edit) -> Path:
    """Copy a .pt2 archive, passing each member's (inner name, bytes) through ``edit``."""
    with zipfile.ZipFile(source) as src, zipfile.ZipFile(target, "w") as dst:
        for item in src.infolist():
            root, _, inner = item.filename.partition("/")
            for name, data in edit(inner, src.read(item)):
                dst.writestr(f"{root}/{name}", data)
    return target


def _json_edit(member: str, change):
    def edit(inner: str, data: bytes):
        if inner == member:
            obj = json.loads(data)
            change(obj)
            data = json.dumps(obj).encode()
        yield inner, data
    return edit


def _set_first_target(obj: dict) -> None:
    obj["graph_module"]["graph"]["nodes"][0]["target"] = "torch.hub.load"


def _pickle_weights(obj: dict) -> None:
    next(iter(obj["config"].values()))["use_pickle"] = True


def _add_member(inner: str, data: bytes):
    yield inner, data
    if inner == "archive_format":
        yield "data/aotinductor/model/model.so", b"\x7fELF"


@pytest.mark.parametrize("edit, reason", [
    (_json_edit("models/model.json", lambda p: p.update(guards_code=["__import__('os')"])), "guard code"),
    (_json_edit("models/model.json", _set_first_target), "calls 'torch.hub.load'"),
    (_json_edit("models/model.json", lambda p: p.update(range_constraints={"__import__('os')": {}})),
     "unexpected shape symbol"),
    (_json_edit("data/weights/model_weights_config.json", _pickle_weights), "pickled Python object"),
    (_add_member, "unexpected archive member 'data/aotinductor"),
], ids=["guards", "target", "sympy", "pickle", "aoti"])
def test_unsafe_archive_is_refused(int8_file, tmp_path, edit, reason) -> None:
    bad = _rewrite(int8_file, tmp_path / "bad.pt2", edit)
    with pytest.raises(ModelFileError, match="refused to load") as info:
        load_model(bad)
    assert reason in info.value.message


def test_program_without_header_is_not_a_model_file(tmp_path) -> None:
    program = torch.export.export(torch.nn.Linear(2, 2), (torch.rand(1, 2),))
    torch.export.save(program, tmp_path / "plain.pt2")
    with pytest.raises(ModelFileError, match="not a distillcli model file"):
        load_model(tmp_path / "plain.pt2")


def test_corrupt_pt2_is_a_model_file_error(tmp_path) -> None:
    (tmp_path / "broken.pt2").write_bytes(b"not a zip")
    with pytest.raises(ModelFileError, match="corrupt"):
        load_model(tmp_path / "broken.pt2")


@pytest.mark.parametrize("text, safe", [
    ("Symbol('s77', positive=True, integer=True)", True), ("s0", True),
    ("Max(1, 2*Symbol('s0', integer=True))", True), ("__import__('os').system('x')", False),
    ("s0.__class__", False), ("exit()", False), ("Symbol('a') + eval", False),
])
def test_shape_expressions(text, safe) -> None:
    assert safe_expression(text) is safe


def test_aoti_package_loads_only_when_allowed_and_matches_the_program(saved, tmp_path, monkeypatch) -> None:
    """An AOTInductor package: compiled once, loads without compiling, gives the compiled program's
    outputs; loading it runs machine code, so it is refused unless the caller opts in."""
    from distillcli.compress.export import export_file
    from distillcli.modelfile import read_header
    from distillcli.modelfile.native import ALLOW_ENV, allow_native

    monkeypatch.delenv(ALLOW_ENV, raising=False)
    path, program = saved
    result = export_file(load_model(path), "aoti", tmp_path / "model")
    assert result.path.suffix == ".aoti" and result.precision == "int8" and result.check["top1_agreement"] == 100.0
    header = read_header(result.path)  # the header, without loading the library
    assert header["kind"] == "aoti" and header["info"]["precision"] == "int8"
    with pytest.raises(ModelFileError, match="runs the machine code inside it") as info:
        load_model(result.path)
    assert "--allow-native" in info.value.hint
    images = torch.rand(5, 3, 16, 16, generator=torch.Generator().manual_seed(3))
    with allow_native():
        package = load_model(result.path)
    assert package.handle.format == "aoti" and package.class_names == ["class0", "class1", "class2", "class3"]
    expected = ProgramModule(program.program, compiled=True)(images)
    assert torch.allclose(package.handle.module(images), expected, atol=1e-4)


@pytest.mark.parametrize("content, message", [
    (None, "not a distillcli AOTInductor package"), (b"junk", "corrupt or not an AOTInductor package")])
def test_foreign_or_corrupt_aoti_is_a_model_file_error(tmp_path, content, message) -> None:
    path = tmp_path / "x.aoti"
    if content is None:
        with zipfile.ZipFile(path, "w") as archive:
            archive.writestr("x/data/aotinductor/model/model.so", b"\x7fELF")
    else:
        path.write_bytes(content)
    with pytest.raises(ModelFileError, match=message):
        load_model(path)


def test_aoti_package_of_a_channels_last_program_reads_any_layout(tmp_path) -> None:
    """Regression: a program captured from channels_last images compiled to code that read plain NCHW
    memory as NHWC without a check (CIFAR top-1 29 % instead of 91 %); the runner lays each batch out
    as the package expects."""
    from distillcli.compress.export import as_program, export_model
    from distillcli.modelfile.native import allow_native

    torch.manual_seed(0)
    spec = ArchSpec("cnn", 4, 3, [0.5] * 3, [0.25] * 3, {"width": 8})
    model = build_model(spec).eval()
    images = torch.rand(6, 3, 16, 16, generator=torch.Generator().manual_seed(4))
    program = as_program(ModelHandle(model, spec), images.contiguous(memory_format=torch.channels_last))
    header = file_header(program, class_names=[f"c{i}" for i in range(4)], input_shape=(3, 16, 16), data={})
    result = export_model(program, header, tmp_path / "cl", "aoti", images)
    with allow_native():
        package = load_model(result.path).handle
    assert package.info.input_layout == "channels_last"
    expected = model(images)
    for batch in (images, images.contiguous(memory_format=torch.channels_last)):
        assert torch.allclose(package.module(batch), expected, atol=1e-4)
