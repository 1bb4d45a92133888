"""Model files: save and load a model of any kind, safely. Each format is one entry of
``modelfile.formats.FORMATS`` (torch-free: its suffix, model format and modules); foreign checkpoints (a
bare state_dict, safetensors) load through ``models.weights``. The rest is fetched on first use.
"""

from distillcli.lazy import lazy_exports

__all__ = ["FORMAT", "FORMAT_VERSION", "ModelFile", "check_format", "file_header", "file_size", "kind_suffixes",
           "load_model", "model_suffix", "read_header", "save_model", "versions"]
__getattr__ = lazy_exports(__name__, {
    **{name: "header" for name in ("FORMAT", "FORMAT_VERSION", "ModelFile", "check_format", "file_header", "versions")},
    **{name: "files" for name in ("file_size", "kind_suffixes", "load_model", "model_suffix", "read_header",
                                   "save_model")}})
