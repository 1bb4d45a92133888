"""Silence the known, harmless noise of torch.compile, torchao and the ONNX exporter.

Each line here was seen on torch 2.14.1 / torchao 0.18 / onnxscript 0.7 and says nothing a
user can act on (deprecations inside the libraries, a missing CUDA toolkit on a CPU-only
machine, the exporter's progress lines). Real errors still raise.
"""

from __future__ import annotations

import contextlib
import io
import logging
import warnings
from typing import Iterator

_LOGGERS = (
    "torch.utils._pytree",  # torchao import: "Enum subclass ... register_constant() is deprecated"
    "torch.utils.cpp_extension",  # compile on a CPU-only machine: "No CUDA runtime is found"
    "torch._inductor",
    "torch._dynamo",
    "torch.export",
    "torch.onnx",
    "onnxscript",
)


@contextlib.contextmanager
def quiet(capture_stdout: bool = False) -> Iterator[None]:
    """Suppress library warnings and log lines below ERROR; optionally swallow stdout too
    (the ONNX exporter prints its progress)."""
    saved = {name: logging.getLogger(name).level for name in _LOGGERS}
    for name in _LOGGERS:
        logging.getLogger(name).setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with contextlib.redirect_stdout(io.StringIO()) if capture_stdout else contextlib.nullcontext():
                yield
    finally:
        for name, level in saved.items():
            logging.getLogger(name).setLevel(level)
