"""Recipe checks that look at files, cheaply and without torch: a checkpoint must be a weights
file (by its first bytes). A dataset's own layout check is its registry entry's ``layout``."""

from __future__ import annotations

from pathlib import Path

from distillcli.modelfile.formats import FORMATS
from distillcli.recipe.yaml_file import short

# torch.save writes a zip archive (b"PK"); torch before 1.6 a pickle (b"\x80") or, before 0.4, a tar file
_TORCH_STARTS = (b"PK", b"\x80")
# files whose suffix says what they hold: model files other than torch.save's, and safetensors
_MODEL_SUFFIXES = {f.suffix for f in FORMATS.entries() if f.suffix != ".pt"} | {".safetensors"}
_TEXT_KINDS = {".yaml": "a YAML file", ".yml": "a YAML file", ".json": "a JSON file"}


def checkpoint_problems(where: str, checkpoint: str) -> list[str]:
    """``checkpoint`` of the model section ``where``: a file that holds weights."""
    try:
        path = Path(checkpoint).expanduser()
        if not path.is_file():
            return [f"{where}.checkpoint: file not found: {checkpoint}"]
        if path.suffix.lower() in _MODEL_SUFFIXES:
            return []
        with open(path, "rb") as f:
            head = f.read(512)
    except (OSError, RuntimeError, ValueError) as e:  # ~nouser/..., a name too long for the file system
        return [f"{where}.checkpoint: cannot be read ({e})"]
    if not head or head.startswith(_TORCH_STARTS) or head[257:262] == b"ustar":
        return []  # an empty file: left to the loader, which says so
    return [f"{where}.checkpoint: {checkpoint} {_looks_like(path, head)}, not a checkpoint; give the weights file "
            "(torch.save's .pt/.pth/.th, a .safetensors file, or a distill model file)"]


def _looks_like(path: Path, head: bytes) -> str:
    if path.suffix.lower() in _TEXT_KINDS:
        return f"is {_TEXT_KINDS[path.suffix.lower()]}"
    if b"\0" in head:
        return f"starts with the bytes {head[:8]!r}, which no PyTorch checkpoint does"
    first = (head.decode("utf-8", "replace").strip().splitlines() or [""])[0]
    return f"is a text file (its first line: {short(first)})"
