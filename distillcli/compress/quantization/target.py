"""The int8 configuration for the machine that will run the model (``--target``; auto: this one).

x86 CPUs multiply uint8 activations by int8 weights. With VNNI (VPDPBUSD) or AMX the products
accumulate in 32 bits; without it (AVX2, AVX-512 before Cascade Lake) oneDNN uses VPMADDUBSW,
which adds pairs of products into a saturating 16-bit sum, so full-range activations overflow.
``reduce_range`` (7-bit activations) keeps those sums in range, as torchao's, onnxruntime's and
OpenVINO's guidance advise for CPUs without VNNI (ResNet-56 on an AVX2 CPU: -0.39 pt against fp32
with 8-bit activations, +0.12 pt with 7-bit). On ARM, torchao's ArmInductorQuantizer: signed
int8 activations, per-tensor weights.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from distillcli.machine import TARGET_CPUS, Target


@dataclass(frozen=True)
class Int8Plan:
    target: Target
    reduce_range: bool
    quantizer: Literal["x86_inductor", "arm_inductor"]

    def why(self) -> str:
        if self.quantizer == "arm_inductor":
            return "torchao's ArmInductorQuantizer: int8 activations, per-tensor weights (not measured on ARM here)"
        if self.reduce_range:
            return "reduce_range: 7-bit activations (no VNNI: VPMADDUBSW's 16-bit sums would saturate)"
        return "full 8-bit activations (VNNI" + (" and AMX" if self.target == "amx" else "") + \
            ": u8 x s8 products accumulate in 32 bits)"

    def info(self) -> dict[str, Any]:
        """What the quantize step records: the target, the setting, the quantizer."""
        return {"target": self.target, "target_machine": TARGET_CPUS[self.target].text, "reduce_range": self.reduce_range,
                "quantizer": self.quantizer}


def int8_plan(target: str = "auto") -> Int8Plan:
    """The plan for ``target`` (one of machine.TARGETS, or auto: this machine)."""
    from distillcli.machine import this_machine

    chosen: Target = this_machine().target if target == "auto" else target  # type: ignore[assignment]
    if chosen == "arm64":
        return Int8Plan(chosen, False, "arm_inductor")
    return Int8Plan(chosen, chosen in ("avx2", "avx512"), "x86_inductor")
