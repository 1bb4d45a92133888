"""Model files: safe loading, round trips in a fresh process, foreign checkpoints."""

from __future__ import annotations

import subprocess
import sys

import pytest
import torch

from distillcli.modelfile import file_header, load_model, save_model
from distillcli.models.weights import load_foreign_weights
from distillcli.errors import ModelFileError
from distillcli.models.build import build_model
from distillcli.models.handle import ArchSpec, ModelHandle
from distillcli.models.backbones import build_backbone
from tests.conftest import SHARED

CIFAR_MEAN, CIFAR_STD = [0.49, 0.48, 0.45], [0.25, 0.24, 0.26]


def _save(path, arch="resnet8", **kwargs):
    spec = ArchSpec(name=arch, num_classes=10, in_channels=3, mean=CIFAR_MEAN, std=CIFAR_STD, kwargs=kwargs)
    torch.manual_seed(0)
    handle = ModelHandle(build_model(spec), spec)
    header = file_header(handle, class_names=[str(i) for i in range(10)], input_shape=(3, 32, 32),
                         data={"name": "synthetic"}, metrics={"top1": 12.5}, recipe={"name": "t"})
    return handle, save_model(path, handle, header)


def test_round_trip_in_a_fresh_process(tmp_path):
    handle, path = _save(tmp_path / "m.pt", width=0.5)
    x = torch.rand(2, 3, 32, 32)
    torch.save(x, tmp_path / "x.pt")
    expected = handle.module.eval()(x)
    code = (
        "import sys, torch\n"
        "from distillcli.modelfile import load_model\n"
        f"mf = load_model({str(path)!r})\n"
        f"y = mf.handle.module(torch.load({str(tmp_path / 'x.pt')!r}, weights_only=True))\n"
        f"torch.save(y, {str(tmp_path / 'y.pt')!r})\n"
        "print(mf.handle.arch.name, mf.handle.arch.kwargs, mf.metrics['top1'], mf.recipe['name'])\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["resnet8", "{'width':", "0.5}", "12.5", "t"]
    assert torch.equal(torch.load(tmp_path / "y.pt", weights_only=True), expected)


def test_file_holds_only_plain_data(tmp_path):
    _, path = _save(tmp_path / "m.pt")
    payload = torch.load(path, weights_only=True)
    assert payload["format"] == "distillcli.model" and payload["format_version"] == 1
    assert payload["arch"]["name"] == "resnet8" and payload["arch"]["mean"] == CIFAR_MEAN
    assert {"state_dict", "structure", "class_names", "recipe", "metrics", "versions"} <= set(payload)


class _Evil:
    def __reduce__(self):
        return (exec, ("open(__import__('os').environ['EVIL_MARKER'], 'w').write('pwned')",))


def test_malicious_pickle_is_refused_without_running(tmp_path, monkeypatch):
    marker = tmp_path / "marker"
    monkeypatch.setenv("EVIL_MARKER", str(marker))
    path = tmp_path / "evil.pt"
    torch.save({"state_dict": {}, "payload": _Evil()}, path)
    with pytest.raises(ModelFileError, match="refused to load .*could run code"):
        load_model(path)
    assert not marker.exists()


def test_corrupt_and_foreign_files_explain_themselves(tmp_path):
    _, path = _save(tmp_path / "m.pt")
    broken = tmp_path / "broken.pt"
    broken.write_bytes(path.read_bytes()[: 2000])
    with pytest.raises(ModelFileError, match="corrupt"):
        load_model(broken)
    plain = tmp_path / "plain.pt"
    torch.save({"weight": torch.zeros(2)}, plain)
    with pytest.raises(ModelFileError, match="not a distillcli model file"):
        load_model(plain)
    with pytest.raises(ModelFileError, match="not found"):
        load_model(tmp_path / "missing.pt")


def _akamaster_like_file(path, tag_cuda: bool):
    """A checkpoint laid out like akamaster's: {'state_dict', 'best_prec1'}, 'module.' prefix,
    no BN num_batches_tracked, and (optionally) storages tagged as saved on CUDA."""
    torch.manual_seed(1)
    net = build_backbone("resnet20", 10)
    state = {f"module.{k}": v for k, v in net.state_dict().items()
             if not k.endswith("num_batches_tracked") and not k.endswith("gather_index")}
    registry = torch.serialization._package_registry
    before = list(registry)
    if tag_cuda:
        torch.serialization.register_package(0, lambda obj: "cuda:0" if obj.device.type == "cpu" else None,
                                             lambda obj, loc: None)
    try:
        torch.save({"state_dict": state, "best_prec1": 91.7}, path)
    finally:
        registry[:] = before
    return net


def test_foreign_checkpoint_prefix_cuda_and_missing_bn_counters(tmp_path):
    path = tmp_path / "resnet20.th"
    net = _akamaster_like_file(path, tag_cuda=True)
    assert b"cuda:0" in path.read_bytes()  # really tagged as a CUDA file
    spec = ArchSpec(name="resnet20", num_classes=10, in_channels=3, mean=CIFAR_MEAN, std=CIFAR_STD)
    model = build_model(spec)
    load_foreign_weights(model, path, strip_prefix="module.")
    x = torch.rand(2, 3, 32, 32)
    net.eval()
    model.eval()
    assert torch.allclose(model.net(x), net(x))


def test_foreign_mismatch_names_missing_unexpected_and_shapes(tmp_path):
    path = tmp_path / "resnet20.th"
    _akamaster_like_file(path, tag_cuda=False)
    model = build_model(ArchSpec(name="resnet32", num_classes=7, in_channels=3, mean=CIFAR_MEAN, std=CIFAR_STD))
    with pytest.raises(ModelFileError) as info:
        load_foreign_weights(model, path)  # prefix not stripped, wrong depth and classes
    msg = str(info.value)
    assert "missing keys: conv1.weight" in msg and "unexpected keys: module.conv1.weight" in msg
    model = build_model(ArchSpec(name="resnet20", num_classes=7, in_channels=3, mean=CIFAR_MEAN, std=CIFAR_STD))
    with pytest.raises(ModelFileError, match=r"wrong shapes: linear.weight \(file \(10, 64\), model \(7, 64\)\)"):
        load_foreign_weights(model, path, strip_prefix="module.")


def test_key_map_renames_prefixes(tmp_path):
    net = build_backbone("resnet8", 10)
    state = {k.replace("linear.", "fc."): v for k, v in net.state_dict().items()}
    torch.save(state, tmp_path / "fc.pt")
    model = build_model(ArchSpec(name="resnet8", num_classes=10, in_channels=3, mean=CIFAR_MEAN, std=CIFAR_STD))
    load_foreign_weights(model, tmp_path / "fc.pt", key_map={"fc": "linear"})
    assert torch.equal(model.net.linear.weight, net.linear.weight)


@pytest.mark.slow
@pytest.mark.skipif(not (SHARED / "weights").exists(), reason="../shared/weights (pretrained teachers) not present")
def test_published_resnet20_checkpoint_loads():
    path = SHARED / "weights/cifar10/akamaster_pytorch_resnet_cifar10/resnet20-12fca82f.th"
    model = build_model(ArchSpec(name="resnet20", num_classes=10, in_channels=3,
                                 mean=[0.485, 0.456, 0.406], std=[0.229, 0.224, 0.225]))
    load_foreign_weights(model, path, strip_prefix="module.")
    assert sum(p.numel() for p in model.parameters()) == 269_722
