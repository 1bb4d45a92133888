"""Package attributes imported on first use (PEP 562), so that importing a package for its
torch-free parts (a recipe's option classes) does not import torch with the rest."""

from __future__ import annotations

from importlib import import_module
from typing import Any, Callable


def lazy_exports(package: str, where: dict[str, str]) -> Callable[[str], Any]:
    """A module ``__getattr__`` that fetches ``name`` from the submodule ``where[name]`` of ``package``."""

    def __getattr__(name: str) -> Any:
        if name not in where:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        return getattr(import_module(f"{package}.{where[name]}"), name)

    return __getattr__
