"""Where and how a run executes: the device, random seeds, the machine's load, and the
torchrun process group. Device handling lives here only."""

from __future__ import annotations

import os
import random
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from distillcli.errors import OptionError
from distillcli.facts import Autocast
from distillcli.machine import TARGET_CPUS, this_machine


def seed_everything(seed: int) -> None:
    """Seed every random generator a run touches."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def resolve_device(name: str, dist: "Distributed | None" = None) -> torch.device:
    """auto -> cuda (cuda:LOCAL_RANK under torchrun), then mps, then cpu; an unavailable
    explicit device is an error."""
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda", dist.local_rank) if dist is not None and dist.enabled else torch.device("cuda")
        if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    device = torch.device(name)
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise OptionError(f"device {name!r} was asked for, but this machine has no usable CUDA GPU",
                              "use --device cpu (or auto)")
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise OptionError(f"device {name!r} does not exist: {torch.cuda.device_count()} GPU(s) visible",
                              f"use cuda:0 .. cuda:{torch.cuda.device_count() - 1}")
    if device.type == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        raise OptionError("device 'mps' was asked for, but MPS is not available here", "use --device cpu (or auto)")
    return device


# Defaults per device type, each a measured or stated choice (README: "Speed of the training loop").
# precision auto = fp32 everywhere: bf16 autocast has not been shown to keep accuracy on the CPU (without
# AMX it may even be slower), and on an H200 it trained the CIFAR recipes 19-32 % slower than fp32
# (scripts/gpu_check.sh; docs/benchmarks.md, "GPU").
AUTO_PRECISION: dict[str, Autocast] = {"cpu": "fp32", "cuda": "fp32", "mps": "fp32"}
# round_to auto on the CPU: the channel multiple its convolutions run fast at, measured by
# scripts/bench_conv_widths.py (docs/benchmarks.md, "Channel multiples per ISA"): for float models
# per vector ISA (Machine.level); for int8 programs per int8 target (Machine.target, --precision
# int8), with the narrowest multiple worth halving to for thin layers: where a layer of half the
# multiple runs as long as one of the multiple, halving only costs accuracy. AVX2's scan allowed
# 4 (0.91 against the 0.9 rule), but a whole ResNet-56 pruned to multiples of 4 ran int8 1.50x
# faster than dense where the 8 plan ran 1.93x: 8 stays. VNNI without AMX: an AMD EPYC Zen 4 ran
# 8-channel int8 layers at 0.93 of the time of 16 (a Xeon capped to VNNI: 0.82), and its whole
# ResNet-56 pruned 16/16/32 ran 1.35x faster than dense int8 where the halved 8/24/48 plan ran
# 1.1-1.2x: the real CPU sets the entry, 16 never halved. Unmeasured CPUs (ARM, pre-AVX2 x86;
# int8 without VNNI on AVX-512) get their float multiple, or 8, as CUDA does: the multiple tensor
# cores want for bf16/fp16.
CPU_ROUND_TO: dict[str, int] = {"AVX-512": 16, "AVX2": 8}
INT8_ROUND_TO: dict[str, tuple[int, int]] = {"amx": (16, 16), "vnni": (16, 16), "avx2": (8, 8)}
AUTO_ROUND_TO: dict[str, int] = {"cuda": 8, "mps": 8}
ROUND_TO_UNMEASURED = 8
NARROWEST = 8  # round_to halves its multiple for thin layers down to this, unless the table says otherwise


@dataclass(frozen=True)
class Rounding:
    """round_to: auto's answer: the channel multiple, the narrowest multiple it halves to for thin
    layers, and the machine (and precision) they were measured for, in words."""

    multiple: int
    narrowest: int
    machine: str


def _float_rounding(multiple: int, machine: str) -> Rounding:
    return Rounding(multiple, min(multiple, NARROWEST), machine)


def _cpu_rounding(level: str, int8_target: str, text: str, int8: bool) -> Rounding:
    if int8 and int8_target in INT8_ROUND_TO:
        return Rounding(*INT8_ROUND_TO[int8_target], f"{text}, int8")
    return _float_rounding(CPU_ROUND_TO.get(level, ROUND_TO_UNMEASURED),
                           text + (", int8 (its float multiple: not measured)" if int8 else ""))


def resolve_precision(name: str, device: torch.device) -> Autocast:
    """The autocast precision a training loop runs in on ``device``; a precision the device
    cannot run is an error naming one it can."""
    if name == "auto":
        return AUTO_PRECISION.get(device.type, "fp32")
    if name == "fp32":
        return "fp32"
    if device.type == "cuda":
        if name == "bf16" and not torch.cuda.is_bf16_supported():
            raise OptionError(f"precision bf16 was asked for, but {torch.cuda.get_device_name(device)} has no bf16 "
                              "support", "use precision: fp16 (loss-scaled) or fp32")
        return name  # type: ignore[return-value]
    if device.type == "cpu" and name == "bf16":
        return "bf16"
    raise OptionError(f"precision {name} cannot run on the {device.type} device "
                      "(fp16 needs CUDA; bf16 needs the CPU or CUDA)", "use precision: auto or fp32")


def auto_round_to(device: torch.device, target: str = "auto", int8: bool = False) -> Rounding:
    """The channel rounding the model's machine runs fast at: ``target``'s (a machine.TARGETS name,
    or cuda), else ``device``'s; on the CPU, this machine's ISA's (caps applied). ``int8``: the
    model will run as an int8 program, which computes on the CPU whatever the run's device."""
    if target in TARGET_CPUS:
        cpu = TARGET_CPUS[target]
        return _cpu_rounding(cpu.level, target, cpu.text, int8)
    kind = target if target != "auto" else "cpu" if int8 else device.type
    if kind == "cpu":
        machine = this_machine()
        return _cpu_rounding(machine.level, machine.target, machine.isa_text(), int8)
    return _float_rounding(AUTO_ROUND_TO.get(kind, ROUND_TO_UNMEASURED), kind)


def resolve_round_to(value: int | str | None, device: torch.device, target: str = "auto") -> int | None:
    """Channel-count rounding for pruning: ``auto`` is the fast multiple of the machine the model
    will run on (``target``; auto: ``device``); an int or None as given."""
    return auto_round_to(device, target).multiple if value == "auto" else value  # type: ignore[return-value]


def _cpu_times(stat: Path) -> tuple[int, int] | None:
    """(busy, total) jiffies of all cores together, from the first line of Linux's /proc/stat."""
    try:
        name, *values = stat.read_text().split("\n", 1)[0].split()
        ticks = [int(v) for v in values[:8]]  # user nice system idle iowait irq softirq steal
    except (OSError, ValueError):
        return None
    if name != "cpu" or len(ticks) < 5:
        return None
    return sum(ticks) - ticks[3] - ticks[4], sum(ticks)


def machine_load(sample_s: float = 0.1, stat: Path = Path("/proc/stat")) -> float | None:
    """How many cores other work keeps busy now: sampled over ``sample_s`` from /proc/stat on Linux
    (the 1-minute load average would still count a job that ended seconds ago), else the 1-minute
    load average where the OS reports one."""
    before = _cpu_times(stat)
    if before is not None:
        time.sleep(sample_s)
        after = _cpu_times(stat)
        if after is not None and after[1] > before[1]:
            return round((after[0] - before[0]) / (after[1] - before[1]) * (os.cpu_count() or 1), 2)
    try:
        return os.getloadavg()[0]
    except (AttributeError, OSError):
        return None


def busy_cores_warning(load: float | None, threads: int) -> str | None:
    """A warning when other processes compete for the cores: torch's OpenMP threads then spin
    and collapse (training 10x slower here) and every latency is inflated."""
    cores = os.cpu_count() or 1
    if load is None or load <= max(cores - threads, 0) + 0.75:
        return None
    return (f"warning: the machine is busy (load {load:.1f} on {cores} cores, this run uses {threads} threads): "
            "training and latency figures will suffer; stop the other work, or use fewer threads "
            "(--threads N or threads: N)")


class Distributed:
    """This process's place in a torchrun job (rank 0 of 1 when not launched by torchrun).

    torchrun sets RANK, LOCAL_RANK and WORLD_SIZE; ``start`` joins the process group through
    torchrun's own rendezvous (env://): gloo on the CPU, nccl on CUDA. The student trains
    wrapped in DistributedDataParallel; everything else (teacher, measuring) is plain.
    """

    def __init__(self, rank: int = 0, world: int = 1, local_rank: int = 0) -> None:
        self.rank, self.world, self.local_rank = rank, world, local_rank

    @classmethod
    def from_env(cls) -> "Distributed":
        world = int(os.environ.get("WORLD_SIZE", "1"))
        return cls(int(os.environ.get("RANK", "0")), world, int(os.environ.get("LOCAL_RANK", "0")))

    @property
    def enabled(self) -> bool:
        return self.world > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def start(self, device: torch.device) -> None:
        if not self.enabled or torch.distributed.is_initialized():
            return
        backend = "nccl" if device.type == "cuda" else "gloo"
        if device.type == "cuda":
            torch.cuda.set_device(device)
        torch.distributed.init_process_group(backend, rank=self.rank, world_size=self.world)

    def stop(self) -> None:
        if self.enabled and torch.distributed.is_initialized():
            torch.distributed.destroy_process_group()

    def wrap(self, model: torch.nn.Module) -> torch.nn.Module:
        """The module the training loop calls: DDP around the model under torchrun."""
        if not self.enabled:
            return model
        from torch.nn.parallel import DistributedDataParallel

        param = next(model.parameters())
        ids = [param.device.index] if param.device.type == "cuda" else None
        return DistributedDataParallel(model, device_ids=ids, broadcast_buffers=False)

    def average_gradients(self, modules: list[torch.nn.Module]) -> None:
        """Average the gradients of modules that train beside the model but outside DDP."""
        if not self.enabled:
            return
        for module in modules:
            for p in module.parameters():
                if p.grad is not None:
                    torch.distributed.all_reduce(p.grad)
                    p.grad /= self.world

    def sum(self, values: list[float]) -> list[float]:
        """Element-wise sum over all processes (identity for one process)."""
        if not self.enabled:
            return list(values)
        t = torch.tensor(values, dtype=torch.float64)
        torch.distributed.all_reduce(t)
        return t.tolist()

    def sum_tensors(self, tensors: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        if not self.enabled:
            return tensors
        for t in tensors.values():
            torch.distributed.all_reduce(t)
        return tensors

    def barrier(self) -> None:
        if self.enabled:
            torch.distributed.barrier()
