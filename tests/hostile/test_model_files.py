"""Damaged, crafted or foreign model files end in one ModelFileError (exit 2) that names the
file and what is wrong, never "this is a bug", and never allocate what the file only declares."""

from __future__ import annotations

import copy
import json
import resource
import time
import zipfile
from pathlib import Path
from typing import Any, Callable

import pytest
import torch

from distillcli.errors import ModelFileError
from distillcli.modelfile import load_model
from tests.conftest import run_cli
from tests.hostile.conftest import save_tiny


def _saved(tmp_path: Path, payload: dict, name: str = "m.pt") -> Path:
    path = tmp_path / name
    torch.save(payload, path)
    return path


def _edited(payload: dict, edit: Callable[[dict], Any]) -> dict:
    out = {k: v for k, v in payload.items() if k != "state_dict"}
    out = copy.deepcopy(out)
    out["state_dict"] = dict(payload["state_dict"])
    edit(out)
    return out


def test_the_untouched_file_loads(tiny_file: Path) -> None:
    mf = load_model(tiny_file)
    assert mf.handle.module(torch.rand(2, 3, 16, 16)).shape == (2, 4)


@pytest.mark.parametrize("content", [b"", b"hello, I am text\n", b"not a model\n", b"PK\x03\x04" + b"\x00" * 40])
def test_empty_text_and_junk_files(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "m.pt"
    path.write_bytes(content)
    with pytest.raises(ModelFileError, match="corrupt") as excinfo:
        load_model(path)
    assert str(path) in str(excinfo.value)


@pytest.mark.parametrize("suffix", [".pt", ".pt2", ".onnx"])
def test_a_directory_is_not_a_model_file(tmp_path: Path, suffix: str) -> None:
    folder = tmp_path / f"model{suffix}"
    folder.mkdir()
    with pytest.raises(ModelFileError, match="is a directory"):
        load_model(folder)


def test_compressed_archive_bomb_is_refused(tmp_path: Path) -> None:
    big = tmp_path / "big.pt"
    torch.save({"x": torch.zeros(8 << 20)}, big)  # 32 MiB of zeros, compressed below to a few KiB
    bomb = tmp_path / "bomb.pt"
    with zipfile.ZipFile(big) as src, zipfile.ZipFile(bomb, "w", compression=zipfile.ZIP_DEFLATED) as dst:
        for info in src.infolist():
            dst.writestr(info.filename, src.read(info.filename))
    with pytest.raises(ModelFileError, match="expand to"):
        load_model(bomb)


def _set(path: str, value: Any) -> Callable[[dict], None]:
    def edit(payload: dict) -> None:
        *parents, last = path.split(".")
        node = payload
        for part in parents:
            node = node[part]
        if value is _DROP:
            del node[last]
        else:
            node[last] = value
    return edit


_DROP = object()
WIDE = {"type": "Conv2d", "args": {"in_channels": 3, "out_channels": 100_000, "kernel_size": [3, 3], "stride": [1, 1],
                                   "padding": [1, 1], "dilation": [1, 1], "groups": 1, "bias": False}}


@pytest.mark.parametrize("edit, cause", [
    (_set("arch", _DROP), "'arch'"),
    (_set("arch", "cnn"), "'arch'"),
    (_set("arch.num_classes", "4"), "arch.num_classes"),
    (_set("arch.num_classes", -4), "arch.num_classes"),
    (_set("arch.in_channels", 10**6), "arch.in_channels"),
    (_set("arch.std", [0.0, 0.0, 0.0]), "arch.std"),
    (_set("arch.mean", [1.0] * 7), "arch.mean"),
    (_set("arch.extra", 1), "unknown extra"),
    (_set("arch.kwargs.width", 10**9), "arch.kwargs.width"),
    (_set("arch.kwargs.colour", "red"), "has no option 'colour'"),
    (_set("arch.name", "no_such_model"), "unknown model"),
    (_set("arch.keep_blocks", -1), "arch.keep_blocks"),
    (_set("class_names", _DROP), "class_names"),
    (_set("class_names", ["a", 2, "c", "d"]), "class_names"),
    (_set("class_names", ["a"]), "class_names"),
    (_set("input_shape", _DROP), "input_shape"),
    (_set("input_shape", "3x16x16"), "input_shape"),
    (_set("input_shape", [3, -16, 16]), "input_shape"),
    (_set("input_shape", [3, 10**9, 10**9]), "input_shape"),
    (_set("input_shape", [1, 16, 16]), "input_shape"),
    (_set("format_version", "1"), "format_version"),
    (_set("format_version", 99), "newer distillcli"),
    (_set("kind", ["eager"]), "'kind'"),
    (_set("data", [1, 2]), "'data'"),
    (_set("metrics", "fast"), "'metrics'"),
    (_set("state_dict", _DROP), "state_dict"),
    (_set("state_dict", [1, 2]), "state_dict"),
    (_set("state_dict.net.classifier.bias", 3), "not a plain CPU tensor"),
    (_set("state_dict.net.classifier.bias", torch.zeros(9)), "wrong shapes"),
    (_set("structure", [1]), "'structure' is not a mapping"),
    (_set("structure.net.stages.0.0", WIDE), "do not fit the model"),
    (_set("structure.net.stages.0.0.args.out_channels", -4), "out_channels=-4"),
    (_set("structure.net.stages.0.0.args.out_channels", 0), "out_channels=0"),
    (_set("structure.net.stages.0.0.args.out_channels", "4"), "out_channels='4'"),
    (_set("structure.net.stages.0.0.args.groups", 3), "do not make a Conv2d"),
    (_set("structure.net.stages.0.0.args.evil", 1), "expected the keys"),
    (_set("structure.net.stages.0.0.type", "Dropout"), "does not have"),
    (_set("structure.net.nothing", {"type": "Linear", "args": {}}), "does not have"),
])
def test_damaged_headers(tmp_path: Path, tiny_payload: dict, edit: Callable[[dict], None], cause: str) -> None:
    # dotted keys of the state_dict and structure hold dots themselves: edit them directly
    payload = _edited(tiny_payload, lambda p: None)
    try:
        edit(payload)
    except KeyError:
        _edit_dotted(payload, edit)
    path = _saved(tmp_path, payload)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    with pytest.raises(ModelFileError, match=cause) as excinfo:
        load_model(path)
    assert str(path) in str(excinfo.value) and "->" in str(excinfo.value)
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before < 256 << 10  # KiB: no big allocation


def _edit_dotted(payload: dict, edit: Callable[[dict], None]) -> None:
    """Apply ``_set("state_dict.a.b.c", v)`` where "a.b.c" is one key (module names hold dots)."""
    cells = edit.__closure__ or ()
    path, value = (c.cell_contents for c in cells if not callable(c.cell_contents))
    top, rest = path.split(".", 1)
    for name in sorted(payload[top], key=len, reverse=True):
        if rest == name or rest.startswith(name + "."):
            tail = rest[len(name) + 1:]
            if not tail:
                payload[top][name] = value
            else:
                node = payload[top][name]
                *parents, last = tail.split(".")
                for part in parents:
                    node = node[part]
                node[last] = value
            return
    payload[top][rest] = value


def test_layers_that_do_not_fit_together(tmp_path: Path, tiny_payload: dict) -> None:
    """Conv and BN shrunk consistently with their weights, but the next conv still expects 4 channels."""
    def shrink(p: dict) -> None:
        p["structure"]["net.stages.0.0"]["args"]["out_channels"] = 2
        p["structure"]["net.stages.0.1"]["args"]["num_features"] = 2
        for key in list(p["state_dict"]):
            if key.startswith(("net.stages.0.0.", "net.stages.0.1.")) and p["state_dict"][key].dim():
                p["state_dict"][key] = p["state_dict"][key][:2]
    with pytest.raises(ModelFileError, match="do not fit together"):
        load_model(_saved(tmp_path, _edited(tiny_payload, shrink)))


def test_shortcut_indices_out_of_range(tmp_path: Path) -> None:
    path = save_tiny(tmp_path / "resnet.pt", arch="resnet8", width=0.25)
    payload = torch.load(path, weights_only=True)
    key = next(k for k in payload["state_dict"] if k.endswith("gather_index"))
    payload["state_dict"][key] = torch.full_like(payload["state_dict"][key], 999)
    with pytest.raises(ModelFileError, match="gather_index"):
        load_model(_saved(tmp_path, payload))


def test_pretrained_flag_never_downloads(tmp_path: Path, tiny_payload: dict, monkeypatch: pytest.MonkeyPatch) -> None:
    """The weights come from the file; building must not fetch ImageNet weights."""
    import distillcli.models.torchvision_adapter as adapter

    calls: list[bool] = []
    real = adapter.build_torchvision
    monkeypatch.setattr(adapter, "build_torchvision",
                        lambda name, num_classes, in_channels=3, weights=None, pretrained=False:
                        calls.append(bool(pretrained or weights)) or real(name, num_classes, in_channels))
    payload = _edited(tiny_payload, _set("arch.kwargs", {"pretrained": True, "weights": "DEFAULT"}))
    payload["arch"]["name"] = "torchvision:squeezenet1_1"
    with pytest.raises(ModelFileError):  # the cnn weights do not fit squeezenet
        load_model(_saved(tmp_path, payload))
    assert calls and not any(calls)


# ---------------------------------------------------------------- .pt2 and .onnx
def _zip(path: Path, members: dict[str, bytes | str]) -> Path:
    with zipfile.ZipFile(path, "w") as archive:
        for name, data in members.items():
            archive.writestr(f"archive/{name}", data)
    return path


@pytest.mark.parametrize("members, cause", [
    ({"archive_format": "pt2", "models/model.json": "{}", "data/weights/model_weights_config.json": "[1]",
      "data/constants/model_constants_config.json": "{}"}, "malformed"),
    ({"archive_format": "pt2", "models/model.json": "[" * 50_000 + "]" * 50_000,
      "data/weights/model_weights_config.json": "{}", "data/constants/model_constants_config.json": "{}"},
     "malformed"),
    ({"archive_format": b"\xff\xfe"}, "corrupt"),
    ({"archive_format": "pt2", "models/model.json": "{", "data/weights/model_weights_config.json": "{}",
      "data/constants/model_constants_config.json": "{}"}, "corrupt"),
])
def test_malformed_pt2_archives(tmp_path: Path, members: dict, cause: str) -> None:
    with pytest.raises(ModelFileError, match=cause):
        load_model(_zip(tmp_path / "m.pt2", members))


def test_truncated_pt2(tmp_path: Path) -> None:
    path = tmp_path / "m.pt2"
    path.write_bytes(b"PK\x03\x04garbage")
    with pytest.raises(ModelFileError, match="corrupt"):
        load_model(path)


def test_pt2_with_a_foreign_program(tmp_path: Path, tiny_payload: dict) -> None:
    class Add(torch.nn.Module):
        def forward(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
            return a + b

    header = {k: v for k, v in tiny_payload.items() if k not in ("state_dict", "structure")} | {"kind": "pt2"}
    program = torch.export.export(Add(), (torch.rand(2, 5), torch.rand(2, 5)))
    path = tmp_path / "foreign.pt2"
    torch.export.save(program, str(path), extra_files={"distillcli.json": json.dumps(header)})
    with pytest.raises(ModelFileError, match="does not take the images its header describes"):
        load_model(path)


def _onnx_file(path: Path, header_text: str, dtype: int = 7, shape: tuple = (1, 2)) -> Path:
    import onnx
    from onnx import helper

    graph = helper.make_graph([helper.make_node("Identity", ["a"], ["b"])], "g",
                              [helper.make_tensor_value_info("a", dtype, list(shape))],
                              [helper.make_tensor_value_info("b", dtype, list(shape))])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    model.metadata_props.add(key="distillcli", value=header_text)
    onnx.save(model, str(path))
    return path


def test_onnx_with_a_foreign_graph(tmp_path: Path, tiny_payload: dict) -> None:
    header = {k: v for k, v in tiny_payload.items() if k not in ("state_dict", "structure")} | {"kind": "onnx"}
    for dtype, shape in ((7, (1, 2)), (1, ("batch", 1, 16, 16)), (1, (8, 3, 16, 16))):  # int64; 1 channel; batch 8
        with pytest.raises(ModelFileError, match="does not take the images"):
            load_model(_onnx_file(tmp_path / "foreign.onnx", json.dumps(header), dtype, shape))


@pytest.mark.parametrize("text, cause", [("{not json", "not valid JSON"), ("[" * 100_000, "not valid JSON"),
                                         ("[1, 2]", "not a distillcli model file"),
                                         (json.dumps({"format": "distillcli.model", "format_version": 1}),
                                          "'arch'")])
def test_onnx_with_a_bad_header(tmp_path: Path, text: str, cause: str) -> None:
    with pytest.raises(ModelFileError, match=cause):
        load_model(_onnx_file(tmp_path / "bad.onnx", text))


# ---------------------------------------------------------------- the real command
def test_cli_eval_of_hostile_files_exits_2(tmp_path: Path, tiny_payload: dict) -> None:
    text = tmp_path / "notes.pt"
    text.write_text("not a model\n")
    huge = _saved(tmp_path, _edited(tiny_payload, _set("input_shape", [3, 10**9, 10**9])), "huge.pt")
    for path, cause in ((text, "not a PyTorch file"), (huge, "input_shape")):
        start = time.perf_counter()
        proc = run_cli("eval", str(path), "--no-latency")
        assert proc.returncode == 2, proc.stderr
        assert proc.stderr.startswith("error:") and cause in proc.stderr and str(path) in proc.stderr
        assert "this is a bug" not in proc.stderr and "Traceback" not in proc.stderr
        assert time.perf_counter() - start < 30
