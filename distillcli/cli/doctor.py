"""`distill doctor`: this machine, and what each compression path will use on it."""

from __future__ import annotations

from typing import Any

from distillcli.cli.app import app
from distillcli.cli.options import JsonOpt, QuietOpt, guarded
from distillcli.output import Output


def _int8_kernels(m: Any) -> str:
    """Which oneDNN int8 kernels run a compiled int8 program here."""
    import torch

    if m.onednn is None:
        return "none: this torch has no oneDNN (int8 programs run their reference kernels)"
    if m.is_arm:
        acl = "with" if torch._C._has_mkldnn_acl else "without"
        return f"oneDNN {m.onednn} {acl} the Arm Compute Library ({m.level})"
    kind = ("AMX tiles (amx_int8)" if m.amx else "AVX-512 VNNI" if "avx512_vnni" in m.features
            else "AVX-VNNI" if m.vnni else "AVX-512 without VNNI" if "avx512f" in m.features
            else "AVX2 VPMADDUBSW (16-bit sums)")
    return f"oneDNN {m.onednn}: {kind}"


def _half(name: str, native: bool, arm: bool, cuda: bool) -> str:
    isa = f"ARM {name.upper()}" if arm else f"AMX / AVX512_{name.upper()}"
    cpu = f"CPU native ({isa})" if native else "CPU emulated (slow; no native support)"
    return cpu + ("; CUDA yes" if cuda else "")


def _onnx_gpu_providers() -> list[str]:
    """The GPU execution providers of the installed onnxruntime, in the order ONNX files ask for them."""
    import onnxruntime

    from distillcli.modelfile.onnx import gpu_providers

    return gpu_providers(onnxruntime.get_available_providers())


@app.command()
@guarded
def doctor(quiet: bool = QuietOpt, as_json: bool = JsonOpt) -> None:
    """Show this machine (CPU ISA and int8 extensions, cores, torch / oneDNN, CUDA) and what each
    compression path will use on it. ISA caps in the environment (ONEDNN_MAX_CPU_ISA,
    ATEN_CPU_CAPABILITY) are honoured.

    Example: ONEDNN_MAX_CPU_ISA=AVX2 ATEN_CPU_CAPABILITY=avx2 distill doctor --json
    """
    import torch
    from rich.table import Table

    from distillcli.compress.quantization.target import int8_plan
    from distillcli.machine import this_machine
    from distillcli.runtime import auto_round_to, resolve_round_to

    m, plan = this_machine(), int8_plan()
    cuda = m.cuda is not None
    round_to = {d: resolve_round_to("auto", torch.device(d)) for d in ("cpu", "cuda") if d == "cpu" or cuda}
    int8_rounding = auto_round_to(torch.device("cpu"), int8=True)
    bf16 = _half("bf16", torch.ops.mkldnn._is_mkldnn_bf16_supported(), m.is_arm,
                 cuda and torch.cuda.is_bf16_supported())
    fp16 = _half("fp16", torch.ops.mkldnn._is_mkldnn_fp16_supported(), m.is_arm, cuda)
    kernels = _int8_kernels(m)
    gpu = f"{m.cuda} (compute capability {m.cuda_capability})" if cuda else "not available"
    onnx_gpu = _onnx_gpu_providers()
    rows = [
        ("int8 (quantize)", f"{plan.quantizer} quantizer, target {plan.target}, reduce_range "
                            f"{'on' if plan.reduce_range else 'off'}", plan.why()),
        ("int8 kernels", kernels, "the int8 convolutions and matmuls of a compiled .pt2 program"),
        ("int8 ONNX (export --int8)", f"onnxruntime, reduce_range {'on' if plan.reduce_range else 'off'}",
         "7-bit weights without VNNI, as onnxruntime advises"),
        ("pruning round_to: auto", ", ".join(f"{n} on {d}" for d, n in round_to.items()) +
         f"; {int8_rounding.multiple} for int8 " + ("(not halved for thin layers)" if int8_rounding.narrowest ==
                                                    int8_rounding.multiple else
                                                    f"(halved down to {int8_rounding.narrowest} for thin layers)"),
         "channel counts kept a multiple of this: the multiple this ISA's fp32 convolutions (or int8 programs, "
         "when a later step quantizes) run fast at (scripts/bench_conv_widths.py)"),
        ("bf16", bf16, "quantize --method bf16, precision: bf16"),
        ("fp16", fp16, "quantize --method fp16 stores fp16 weights; made on the CPU it computes in fp32, "
                       "in a CUDA run in fp16 on the GPU"),
        ("CUDA", gpu, "training and evaluation on the GPU (--device cuda)"),
        ("ONNX on the GPU", ", ".join(onnx_gpu) or "none: this onnxruntime runs on the CPU only",
         "distill eval FILE.onnx --device cuda (onnxruntime-gpu, installed in place of onnxruntime, adds "
         "them); float .pt2 programs move to the GPU, int8 ones run on the CPU"),
    ]
    result = {"machine": m.to_dict(), "summary": m.describe(), "int8": {**plan.info(), "why": plan.why()},
              "int8_kernels": kernels, "onnx_int8": {"reduce_range": plan.reduce_range}, "round_to": round_to,
              "round_to_int8": {"multiple": int8_rounding.multiple, "narrowest": int8_rounding.narrowest},
              "bf16": bf16, "fp16": fp16, "cuda": gpu, "onnx_gpu_providers": onnx_gpu}
    table = Table(title=f"this machine: {m.describe()}; torch {m.torch}, oneDNN {m.onednn or '-'}")
    for col in ("path", "here", "why"):
        table.add_column(col)
    for row in rows:
        table.add_row(*row)
    out = Output(as_json, quiet)
    out.result(result, table)
    out.info("int8 for another machine: distill quantize MODEL --target avx2|avx512|vnni|amx|arm64\n"
             "pruning for another machine: distill prune MODEL ... --target avx2|avx512|vnni|amx|arm64|cuda")
