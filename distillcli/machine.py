"""The machine a model is made or run on, as far as a model file cares: architecture, CPU ISA
level and int8 extensions (VNNI, AMX; on ARM NEON, dot product, SVE, i8mm), cores, torch and
oneDNN versions, the CUDA device.

The ISA caps users set to emulate an older CPU are honoured, so the report says what this
process runs: ``ATEN_CPU_CAPABILITY`` caps ATen's vectorised kernels (torch reports it), and
``ONEDNN_MAX_CPU_ISA`` (or the older ``DNNL_MAX_CPU_ISA``) caps oneDNN, which runs the int8
convolutions and matmuls: VNNI and AMX count only where oneDNN may use them.
torch is imported only when the machine is read (``distill doctor --help`` starts fast).
"""

from __future__ import annotations

import functools
import os
import platform
import re
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal, get_args

Target = Literal["avx2", "avx512", "vnni", "amx", "arm64"]


@dataclass(frozen=True)
class TargetCPU:
    """A machine a model can be tuned for: ``text`` names it; ``level`` is the vector ISA level
    (Machine.level's names) it stands for where fp32 speed is concerned: VNNI and AMX CPUs are
    AVX-512 ones (AVX-VNNI laptops, AVX2 level, run AVX-512's multiples as fast)."""

    text: str
    level: str


TARGET_CPUS: dict[Target, TargetCPU] = {
    "avx2": TargetCPU("x86_64 AVX2 (no VNNI)", "AVX2"), "avx512": TargetCPU("x86_64 AVX-512 (no VNNI)", "AVX-512"),
    "vnni": TargetCPU("x86_64 with VNNI", "AVX-512"), "amx": TargetCPU("x86_64 AVX-512 + VNNI + AMX", "AVX-512"),
    "arm64": TargetCPU("arm64", "NEON")}
TARGETS: tuple[Target, ...] = get_args(Target)
ARM = ("aarch64", "arm64")
X86_FLAGS = ("avx2", "avx512f", "avx512_vnni", "avx_vnni", "amx_tile", "amx_int8")
ARM_FLAGS = ("asimd", "asimddp", "sve", "sve2", "i8mm")
_VNNI = ("avx2", "avx_vnni", "avx512f", "avx512_vnni")
# ONEDNN_MAX_CPU_ISA -> the flags above that oneDNN may still use (oneDNN's own ISA names;
# SSE41 / AVX leave none of them; a name not listed caps nothing)
_ONEDNN_CAPS: dict[str, tuple[str, ...]] = {
    "SSE41": (), "AVX": (), "AVX2": ("avx2",), "AVX2_VNNI": ("avx2", "avx_vnni"), "AVX2_VNNI_2": ("avx2", "avx_vnni"),
    "AVX512_CORE": ("avx2", "avx512f"), **dict.fromkeys(
        ("AVX512_CORE_VNNI", "AVX512_CORE_BF16", "AVX512_CORE_FP16", "AVX10_1_512"), _VNNI),
    **dict.fromkeys(("AVX512_CORE_AMX", "AVX10_1_512_AMX", "AVX512_CORE_AMX_FP16", "AVX10_1_512_AMX_FP16"),
                    (*_VNNI, "amx_tile", "amx_int8")),
}


@dataclass(frozen=True)
class Machine:
    arch: str  # platform.machine(): x86_64, aarch64, arm64 ...
    isa: str  # ATen's CPU capability, lower case: avx512, avx2, default (x86); sve256, default (ARM)
    features: tuple[str, ...]  # of X86_FLAGS / ARM_FLAGS, those this process may use (caps applied)
    cores: int
    torch: str
    onednn: str | None = None
    cuda: str | None = None  # the CUDA device's name; None: no CUDA
    cuda_capability: str | None = None  # "9.0"

    @property
    def is_arm(self) -> bool:
        return self.arch.lower() in ARM

    @property
    def vnni(self) -> bool:
        return "avx512_vnni" in self.features or "avx_vnni" in self.features

    @property
    def amx(self) -> bool:
        return "amx_int8" in self.features

    @property
    def target(self) -> Target:
        """The int8 target class of this machine (what `--target` names)."""
        if self.is_arm:
            return "arm64"
        return "amx" if self.amx else "vnni" if self.vnni else "avx512" if "avx512f" in self.features else "avx2"

    @property
    def level(self) -> str:
        """The vector ISA level, as people name it."""
        if self.is_arm:
            names = {"asimd": "NEON", "asimddp": "dotprod", "sve": "SVE", "sve2": "SVE2", "i8mm": "i8mm"}
            return " + ".join(names[f] for f in ARM_FLAGS if f in self.features) or "no NEON"
        if self.isa == "avx512" and "avx512f" in self.features:
            return "AVX-512"
        return "AVX2" if self.isa in ("avx2", "avx512") and "avx2" in self.features else "no AVX2"

    def isa_text(self) -> str:
        """e.g. "x86_64 AVX-512 + VNNI + AMX", "x86_64 AVX2 (no VNNI)", "aarch64 NEON + SVE + i8mm"."""
        if self.is_arm:
            return f"{self.arch} {self.level}"
        extras = " + VNNI" if self.vnni else " (no VNNI)"
        return f"{self.arch} {self.level}{extras}{' + AMX' if self.amx else ''}"

    def describe(self) -> str:
        """One line: ISA, cores and the CUDA device."""
        cuda = f", CUDA {self.cuda} (sm {self.cuda_capability})" if self.cuda else ""
        return f"{self.isa_text()}, {self.cores} cores{cuda}"

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "features": list(self.features)}

    @classmethod
    def from_dict(cls, raw: Any) -> Machine:
        """The machine a file or record holds; ValueError naming what is malformed."""
        if not isinstance(raw, dict):
            raise ValueError("not a mapping")
        texts = {"arch": True, "isa": True, "torch": True, "onednn": False, "cuda": False, "cuda_capability": False}
        for key, required in texts.items():
            value = raw.get(key)
            if not (isinstance(value, str) and 0 < len(value) <= 200 or value is None and not required):
                raise ValueError(f"{key} must be a short text")
        features, cores = raw.get("features"), raw.get("cores")
        if not (isinstance(features, (list, tuple)) and len(features) <= 32
                and all(isinstance(f, str) and len(f) <= 32 for f in features)):
            raise ValueError("features must be a list of ISA flags")
        if not (isinstance(cores, int) and not isinstance(cores, bool) and 0 < cores <= 1 << 20):
            raise ValueError("cores must be a positive integer")
        return cls(**{k: raw.get(k) for k in texts}, features=tuple(features), cores=cores)


def difference(before: Machine, now: Machine) -> str | None:
    """What differs for a model file between the machine it was made on and ``now`` (arch, ISA
    level, VNNI, AMX, CUDA), in one line; None when nothing does."""
    def yes(flag: bool) -> str:
        return "yes" if flag else "no"

    pairs = [("arch", before.arch, now.arch), ("ISA", before.level, now.level),
             ("VNNI", yes(before.vnni), yes(now.vnni)), ("AMX", yes(before.amx), yes(now.amx)),
             ("CUDA", before.cuda or "none", now.cuda or "none")]
    return ", ".join(f"{name} {a} -> {b}" for name, a, b in pairs if a != b) or None


def file_note(header: dict[str, Any], name: str, now: Machine) -> str | None:
    """The one-line note `distill eval` prints when ``now`` differs from the machine a model file
    was tuned for (int8: its recorded target; fp16 made on a GPU: a GPU) or, for any file, the machine
    that wrote it."""
    info = header.get("info") or {}
    if info.get("computes_in") == "float16" and not now.cuda:
        return (f"note: {name} computes in float16, made for a GPU, and this machine has none: on the CPU it runs "
                "slower than fp32 (`distill quantize --method fp16 --device cpu` writes fp16 weights that compute "
                "in fp32)")
    target = info.get("target")
    if target in TARGET_CPUS:
        if target == now.target:
            return None
        made = f"tuned for {TARGET_CPUS[target].text}"
    else:
        try:
            before = Machine.from_dict(header.get("machine"))
        except ValueError:  # an older file records no machine
            return None
        if difference(before, now) is None:
            return None
        made = f"written on {before.isa_text()}" + (f" with CUDA {before.cuda}" if before.cuda else "")
    here = now.isa_text() + (f" with CUDA {now.cuda}" if now.cuda else "")
    return f"note: {name} was {made}; this machine is {here}: accuracy and speed may differ"


def _cpu_flags() -> set[str]:
    """ISA flags from /proc/cpuinfo ("flags" on x86, "Features" on ARM); empty where there is none."""
    try:
        text = Path("/proc/cpuinfo").read_text(errors="replace")
    except OSError:
        return set()
    found = re.search(r"^(?:flags|Features)\s*:(.*)$", text, re.MULTILINE)
    return set(found.group(1).split()) if found else set()


def _onednn_cap() -> tuple[str, ...] | None:
    cap = (os.environ.get("ONEDNN_MAX_CPU_ISA") or os.environ.get("DNNL_MAX_CPU_ISA") or "").upper()
    return _ONEDNN_CAPS.get(cap)


@functools.cache
def this_machine() -> Machine:
    import torch

    arch = platform.machine() or "unknown"
    flags = _cpu_flags()
    if arch.lower() in ARM:
        features = tuple(f for f in ARM_FLAGS if f in flags) or (("asimd",) if arch == "arm64" else ())  # macOS
    else:
        cap = _onednn_cap()
        features = tuple(f for f in X86_FLAGS if f in flags and (cap is None or f in cap))
    found = re.search(r"(?:MKL-DNN|oneDNN)[^\n]*? v([\d.]+)", torch.__config__.show())
    onednn = found.group(1) if found and torch.backends.mkldnn.is_available() else None
    cuda = capability = None
    if torch.cuda.is_available():
        cuda, capability = torch.cuda.get_device_name(0), ".".join(map(str, torch.cuda.get_device_capability(0)))
    return Machine(arch=arch, isa=torch.backends.cpu.get_cpu_capability().lower(), features=features,
                   cores=os.cpu_count() or 1, torch=str(torch.__version__), onednn=onednn, cuda=cuda,
                   cuda_capability=capability)
