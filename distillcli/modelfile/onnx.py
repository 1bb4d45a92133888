"""ONNX model files: the distillcli header (arch, classes, data, metrics, recipe) is stored as
JSON in the model's ``metadata_props["distillcli"]``. Weights are saved inside the file up to
1 GiB; beyond that (protobuf stops at 2 GiB) they go to ``FILE.onnx.data`` beside it, and the
two files must travel together. ``OnnxRunner`` lets ``distill eval model.onnx`` measure them
under onnxruntime.

Safety: an ONNX file is a protobuf graph of standard operators; onnxruntime runs it without
executing code from the file (no custom-operator libraries are registered here). The loader
also refuses external-data locations that leave the model's folder.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, cast

import torch
from torch import Tensor, nn

from distillcli.atomic_write import atomic_path
from distillcli.errors import ModelFileError
from distillcli.models.weights import check_model_path
from distillcli.modelfile.header import ModelFile, check_format, recorded_model
from distillcli.models.handle import ArchSpec, ModelHandle

META_KEY = "distillcli"
INPUT, OUTPUT = "images", "logits"
INLINE_LIMIT = 1 << 30


GPU_PROVIDERS = ("TensorrtExecutionProvider", "CUDAExecutionProvider")  # best first
CPU_PROVIDER = "CPUExecutionProvider"


def gpu_providers(available: list[str]) -> list[str]:
    """The GPU providers among ``available``, best first (the onnxruntime-gpu build has them;
    TensorRT also needs its libraries)."""
    return [p for p in GPU_PROVIDERS if p in available]


def providers_for(device: torch.device, available: list[str]) -> list[Any]:
    """onnxruntime's execution providers for ``device``, best first: on CUDA the GPU providers, each
    on the device's GPU; the CPU always last, where onnxruntime falls back to."""
    gpu = [(p, {"device_id": device.index or 0}) for p in gpu_providers(available)] if device.type == "cuda" else []
    return gpu + [CPU_PROVIDER]


class OnnxRunner:
    """Calls an onnxruntime session like a model: float32 NCHW images in, logits out.

    The session starts on the CPU; ``place_on(cuda)`` moves it to the GPU providers this
    onnxruntime has. Not an nn.Module: it has no parameters to count, and measure skips params /
    MACs for it (the header keeps those of the source model).
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self.session = self._session([CPU_PROVIDER])
        self.input = self.session.get_inputs()[0].name

    def _session(self, providers: list[Any]) -> Any:
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = torch.get_num_threads()
        options.log_severity_level = 3
        try:
            return ort.InferenceSession(str(self.path), options, providers=providers)
        except Exception as e:
            raise ModelFileError(f"onnxruntime cannot load {self.path}: {str(e).splitlines()[0][:200]}",
                                 f"if the model keeps its weights in {self.path.name}.data, that file must be beside it")

    @property
    def runtime(self) -> str:
        return f"onnxruntime {self.session.get_providers()[0]}"

    @property
    def compute_device(self) -> torch.device:
        """Where the session computes: the GPU when a GPU provider took it (onnxruntime falls back to
        the CPU, e.g. TensorRT without its libraries, and then says so in get_providers)."""
        provider = self.session.get_providers()[0]
        if provider == CPU_PROVIDER:
            return torch.device("cpu")
        return torch.device("cuda", int(self.session.get_provider_options()[provider].get("device_id", 0)))

    def place_on(self, device: torch.device) -> None:
        import onnxruntime as ort

        providers = providers_for(device, ort.get_available_providers())
        if providers != [CPU_PROVIDER]:
            self.session = self._session(providers)

    def __call__(self, images: Tensor) -> Tensor:
        feed = {self.input: images.detach().to("cpu", torch.float32).contiguous().numpy()}
        return torch.from_numpy(self.session.run(None, feed)[0])


def write_onnx(proto: Any, header: dict[str, Any], path: Path) -> None:
    """Set the header and save; weights inline when small enough, else in PATH.data."""
    import onnx

    del proto.metadata_props[:]
    proto.metadata_props.add(key=META_KEY, value=json.dumps(header))
    external = proto.ByteSize() > INLINE_LIMIT
    data = path.with_name(path.name + ".data")
    if data.exists():
        data.unlink()
    with atomic_path(path) as tmp:
        onnx.save_model(proto, str(tmp), save_as_external_data=external, all_tensors_to_one_file=True,
                        location=data.name)


def _check_external_data(proto: Any, path: Path) -> None:
    for tensor in proto.graph.initializer:
        for entry in tensor.external_data:
            if entry.key == "location" and (Path(entry.value).name != entry.value or entry.value in ("", ".", "..")):
                raise ModelFileError(f"refused to load {path}: its weights point outside its folder ({entry.value!r})",
                                     "only load ONNX files written by distillcli or from a source you trust")


def load_onnx(path: Path) -> ModelFile:
    """Read a distillcli ONNX file: header from metadata_props, an onnxruntime session to run it."""
    import onnx

    path = Path(path)
    check_model_path(path)
    try:
        proto = onnx.load(str(path), load_external_data=False)
    except Exception as e:
        raise ModelFileError(f"cannot read {path}: not an ONNX file ({str(e).splitlines()[0][:160] if str(e) else e!r})",
                             "re-create the file; a partial copy is the usual cause") from None
    _check_external_data(proto, path)
    meta = {p.key: p.value for p in proto.metadata_props}
    if META_KEY not in meta:
        raise ModelFileError(f"{path} is an ONNX model without a distillcli header",
                             "export models with `distill export MODEL --format onnx`")
    try:
        header = json.loads(meta[META_KEY])
    except (ValueError, RecursionError) as e:
        raise ModelFileError(f"{path}: its distillcli header is not valid JSON ({str(e)[:120]})",
                             "re-export the model with `distill export MODEL --format onnx`") from None
    check_format(header, path)
    runner = OnnxRunner(path)
    _check_io(runner, header, path)
    _, precision, facts = recorded_model(header)
    handle = ModelHandle(cast(nn.Module, runner), ArchSpec.from_dict(header["arch"]), "onnx", precision, facts)
    return ModelFile(handle, header["class_names"], tuple(header["input_shape"]), header.get("data", {}),
                     header.get("metrics", {}), header.get("recipe", {}), path)


def _check_io(runner: OnnxRunner, header: dict[str, Any], path: Path) -> None:
    """The graph must take one float image batch of the recorded shape (any batch size) and
    return one logits tensor per image; anything else fails only when it is evaluated."""
    inputs, outputs = runner.session.get_inputs(), runner.session.get_outputs()
    shape, classes = list(header["input_shape"]), header["arch"]["num_classes"]
    x = inputs[0] if len(inputs) == 1 else None
    y = outputs[0] if len(outputs) == 1 else None
    fits = (x is not None and x.type == "tensor(float)" and len(x.shape) == 4 and not isinstance(x.shape[0], int)
            and all(not isinstance(got, int) or got == want for got, want in zip(x.shape[1:], shape))
            and y is not None and y.type in ("tensor(float)", "tensor(float16)", "tensor(bfloat16)")
            and len(y.shape) == 2 and (not isinstance(y.shape[1], int) or y.shape[1] == classes))
    if not fits:
        got = ", ".join(f"{i.name} {i.type} {i.shape}" for i in inputs)[:200]
        raise ModelFileError(f"{path}: the ONNX graph does not take the images its header describes (expected one "
                             f"float input [batch, {', '.join(map(str, shape))}] and one output [batch, {classes}]; "
                             f"its inputs: {got or 'none'})", "export models with `distill export MODEL --format onnx`")


def save_onnx(handle: ModelHandle, header: dict[str, Any], path: Path) -> None:
    """Re-save a loaded ONNX model with a new header (its graph and weights unchanged)."""
    import onnx

    runner = cast(OnnxRunner, handle.module)
    write_onnx(onnx.load(str(runner.path)), header, path)
