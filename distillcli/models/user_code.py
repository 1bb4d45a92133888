"""Your own model code (``arch: py:<file.py or module>:<callable>``). The callable is called with the
model's ``args:``, plus ``num_classes`` and ``in_channels`` when it takes them, and must return an
``nn.Module`` that maps (N, C, H, W) images to (N, num_classes) logits. Importing the file runs
it, so ``models.backbones`` builds these only with the user's consent (``models.sources``)."""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import inspect
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

from torch import nn

from distillcli.errors import OptionError


def split_location(spec: str) -> tuple[str, str]:
    """``path/to/file.py:Net`` or ``pkg.module:Net`` -> (location, callable name)."""
    location, sep, attr = spec.rpartition(":")
    if not sep or not location or not attr.isidentifier():
        raise OptionError(f"py:{spec} does not name a callable",
                          "write py:<file.py or module>:<callable>, e.g. py:models/mynet.py:MyNet")
    return location, attr


def _import(location: str) -> ModuleType:
    if not location.endswith(".py"):
        try:
            return importlib.import_module(location)
        except ImportError as exc:
            raise OptionError(f"cannot import module {location!r} ({exc})",
                              "install it or put it on PYTHONPATH, or give the .py file's path") from None
    path = Path(location).expanduser().resolve()
    if not path.is_file():
        raise OptionError(f"model code not found: {location}", "give the path of the .py file that defines the model")
    name = "distill_user_" + hashlib.blake2b(str(path).encode(), digest_size=6).hexdigest()
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None  # a .py file always has a loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses and pickling look their module up by name
    try:
        spec.loader.exec_module(module)
    except Exception:
        del sys.modules[name]
        raise
    return module


def build_user_model(spec: str, num_classes: int, in_channels: int = 3, **args: Any) -> nn.Module:
    location, attr = split_location(spec)
    module = _import(location)
    fn = getattr(module, attr, None)
    if not callable(fn):
        raise OptionError(f"{location} has no callable {attr!r}", "name the class or function that builds the model")
    params = inspect.signature(fn).parameters
    takes_any = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())
    extra = {k: v for k, v in (("num_classes", num_classes), ("in_channels", in_channels))
             if (k in params or takes_any) and k not in args}
    model = fn(**args, **extra)
    if not isinstance(model, nn.Module):
        raise OptionError(f"py:{spec} returned {type(model).__name__}, not a torch.nn.Module",
                          "return the model (an nn.Module instance) from the callable")
    return model
