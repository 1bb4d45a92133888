"""Refuse ``.pt2`` archives that could run code when ``torch.export.load`` reads them.

``torch.export.load`` is not safe on untrusted files (its own docstring says so). In torch
2.14.1 it can run code from the file in five ways:
  1. weights or constants flagged ``use_pickle`` are read with ``torch.load(weights_only=False)``;
  2. constants named ``custom_obj_*`` / ``opaque_obj_*`` are unpickled (torchbind / pickle);
  3. the sample inputs fall back to ``torch.load(weights_only=False)`` when the safe load fails;
  4. ``guards_code`` strings are ``exec``-ed when the program is turned into a module;
  5. symbolic-shape expressions are parsed with ``sympy.sympify`` (an ``eval``), and graph
     targets are looked up by name under ``torch``, so a crafted target can name any function.
It also loads compiled AOTInductor libraries (``data/aotinductor/``) and an older format
built on ``torch.load``.

``check_archive`` reads the zip with ``zipfile`` and ``json`` only and lets a file through only
if none of this can happen: the new archive format; no compiled code; no pickled weights or
constants; sample inputs that load with ``weights_only=True``; no guard code; graph targets
that are ATen / quantized-decomposed operators or Python operators; shape expressions made of
symbols, integers, arithmetic and a few sympy functions. Programs written by distillcli
always pass; anything else is refused with the reason.
"""

from __future__ import annotations

import io
import json
import re
import zipfile
from pathlib import Path
from typing import Any, Iterator

import torch

from distillcli.errors import ModelFileError

HEADER_NAME = "distillcli.json"  # the model header, in the archive's extra files

_FIXED = {"archive_format", "archive_version", "byteorder", ".data/version", ".data/serialization_id"}
_ALLOWED_DIRS = ("models/", "data/weights/", "data/constants/", "data/sample_inputs/", "extra/")
_TARGET = re.compile(r"torch\.ops\.(aten|prims|quantized_decomposed)\.\w+\.\w+|_operator\.\w+")
_SYMBOL = re.compile(r"Symbol\('[A-Za-z_]\w*'(?:,\s*[a-z_]+=(?:True|False))*\)")
_SYMBOL_NAME = re.compile(r"[a-z]\d+")
_SYMPY_NAMES = {"Integer", "Max", "Min", "Mod", "FloorDiv", "CeilDiv", "PythonMod", "Eq", "Ne", "Lt", "Le", "Gt",
                "Ge", "And", "Or", "Not", "True", "False", "oo"}


def _refuse(path: Path, why: str) -> ModelFileError:
    return ModelFileError(f"refused to load {path}: {why}",
                          "only .pt2 files written by distillcli (distill quantize / distill export) are loaded; "
                          "re-create the file from its source model")


def safe_expression(text: str) -> bool:
    """True if a serialized sympy expression contains nothing but symbols, numbers, arithmetic
    and known sympy function names (no strings, attributes or other names to eval)."""
    rest = _SYMBOL.sub("0", text)
    if "__" in rest or not re.fullmatch(r"[\w\s+\-*/%(),<>=!.]*", rest):
        return False
    return all(name in _SYMPY_NAMES or _SYMBOL_NAME.fullmatch(name)
               for name in re.findall(r"[A-Za-z_]\w*", rest))


def _walk(node: Any) -> Iterator[tuple[str, Any]]:
    if isinstance(node, dict):
        for key, value in node.items():
            yield key, value
            yield from _walk(value)
    elif isinstance(node, list):
        for item in node:
            yield from _walk(item)


def _check_program(path: Path, program: dict[str, Any]) -> None:
    if program.get("guards_code"):
        raise _refuse(path, "the program carries guard code, which torch.export.load would execute")
    for key in program.get("range_constraints", {}):
        if not safe_expression(key):
            raise _refuse(path, f"unexpected shape symbol {key[:80]!r}")
    for key, value in _walk(program.get("graph_module", {})):
        if key == "target" and isinstance(value, str) and not _TARGET.fullmatch(value):
            raise _refuse(path, f"the graph calls {value[:80]!r}, which is not a tensor operator")
        if key == "expr_str" and isinstance(value, str) and not safe_expression(value):
            raise _refuse(path, f"unexpected shape expression {value[:80]!r}")


def _check_payload(path: Path, config: dict[str, Any], what: str) -> None:
    for name, meta in config.get("config", {}).items():
        if meta.get("use_pickle") or not str(meta.get("path_name", "")).startswith(("weight_", "tensor_")):
            raise _refuse(path, f"{what} {name!r} is stored as a pickled Python object")


def check_archive(path: Path) -> dict[str, Any]:
    """Validate a ``.pt2`` archive (see the module docstring); returns the distillcli header."""
    try:
        with zipfile.ZipFile(path) as archive:
            declared = sum(info.file_size for info in archive.infolist())
            if declared > 2 * path.stat().st_size + (16 << 20):
                raise _refuse(path, f"its compressed members expand to {declared / 2**30:.1f} GiB "
                                    "(torch.export writes uncompressed archives)")
            names = archive.namelist()
            roots = {n.split("/", 1)[0] for n in names}
            if len(roots) != 1:
                raise _refuse(path, "not a single-program .pt2 archive")
            root = roots.pop() + "/"
            inner = {n[len(root):]: n for n in names if n != root}

            def read(name: str) -> bytes:
                return archive.read(inner[name])

            for name in inner:
                if name not in _FIXED and not name.startswith(_ALLOWED_DIRS):
                    raise _refuse(path, f"unexpected archive member {name!r} (compiled code or an older format)")
            if "archive_format" not in inner or read("archive_format").decode() != "pt2":
                raise _refuse(path, "not a torch.export archive (archive_format is not 'pt2')")
            models = [n for n in inner if n.startswith("models/")]
            if models != ["models/model.json"]:
                raise _refuse(path, f"expected one program named 'model', found {models}")
            for config_name, what in (("data/weights/model_weights_config.json", "weight"),
                                      ("data/constants/model_constants_config.json", "constant")):
                if config_name not in inner:
                    raise _refuse(path, f"{config_name} is missing (an older, pickle-based format)")
                _check_payload(path, json.loads(read(config_name)), what)
            sample = "data/sample_inputs/model.pt"
            if sample in inner:
                try:
                    torch.load(io.BytesIO(read(sample)), weights_only=True)
                except Exception:
                    raise _refuse(path, "its sample inputs are not plain tensors") from None
            _check_program(path, json.loads(read("models/model.json")))
            if f"extra/{HEADER_NAME}" not in inner:
                raise ModelFileError(f"{path} is a torch.export program but not a distillcli model file",
                                     "export models with `distill export MODEL --format pt2`")
            header = json.loads(read(f"extra/{HEADER_NAME}"))
    except (zipfile.BadZipFile, KeyError, UnicodeDecodeError, json.JSONDecodeError, OSError, EOFError) as e:
        raise ModelFileError(f"cannot read {path}: the file is corrupt or not a .pt2 program ({str(e)[:160]})",
                             "re-create the file; a partial copy is the usual cause") from None
    except (AttributeError, TypeError, ValueError, RecursionError, zipfile.LargeZipFile):
        # JSON of the wrong shape (a list where a mapping belongs ...), or nested too deeply
        raise _refuse(path, "its program description is malformed") from None
    if not isinstance(header, dict):
        raise _refuse(path, "its distillcli header is not a JSON object")
    return header
