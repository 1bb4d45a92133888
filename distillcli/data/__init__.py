"""Datasets and batch loaders: ``load_data(cfg)`` turns a ``data:`` recipe section into a DataBundle.

``DataConfig`` loads without torch (a recipe validates without it); the rest on first use.
``DATASETS`` (``data.registry``, torch-free) names every dataset and what it reads.
"""

from distillcli.data.config import DataConfig
from distillcli.lazy import lazy_exports

__all__ = ["DATASETS", "BatchLoader", "DataBundle", "DataConfig", "FolderLoader", "TensorLoader", "load_data"]
__getattr__ = lazy_exports(__name__, {"DATASETS": "registry", "load_data": "load", "BatchLoader": "bundle",
                                      "DataBundle": "bundle", "FolderLoader": "loaders", "TensorLoader": "loaders"})
