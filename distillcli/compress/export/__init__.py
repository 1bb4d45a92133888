"""Export: torch.export programs (``.pt2``) and ONNX files, both registered as model-file formats,
so `distill eval` loads them like any model file."""

from distillcli.compress.export.api import ExportResult, export_file, export_model
from distillcli.compress.export.check import agreement, matches
from distillcli.compress.export.onnx import export_onnx
from distillcli.modelfile.onnx import OnnxRunner
from distillcli.compress.export.program import as_program, export_program
from distillcli.modelfile.program import ProgramModule

__all__ = ["ExportResult", "OnnxRunner", "ProgramModule", "agreement",
           "as_program", "export_file", "export_model", "export_onnx", "export_program", "matches"]
