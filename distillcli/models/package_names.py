"""The model names an installed package registers, read from its source files without importing
it (importing torchvision or timm costs seconds and imports torch): every function decorated with
the package's ``register_model``, as its own ``list_models`` would list them."""

from __future__ import annotations

import functools
import re
from importlib.util import find_spec
from pathlib import Path

_REGISTERED = re.compile(r"^@register_model(?:\(\))?[ \t]*\n(?:@.*\n)*def (\w+)", re.M)


@functools.cache
def _registered(package: str, folder: str) -> tuple[str, ...]:
    spec = find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        return ()
    models = Path(next(iter(spec.submodule_search_locations))) / folder
    names = {n for f in models.glob("*.py") for n in _REGISTERED.findall(f.read_text(encoding="utf-8"))}
    return tuple(sorted(names))


def torchvision_names() -> list[str]:
    """torchvision's image classifiers (``torchvision.models.list_models(module=torchvision.models)``)."""
    return list(_registered("torchvision", "models"))


def timm_names() -> list[str]:
    """timm's models (``timm.list_models()``)."""
    return list(_registered("timm", "models"))
