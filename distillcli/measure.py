"""Accuracy, parameters, MACs, size and latency: the numbers every step is judged by."""

from __future__ import annotations

import statistics
from typing import Any, Callable, Iterable, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from distillcli.runtime import Distributed


CONFUSION_MAX_CLASSES = 100  # beyond this the matrix (C^2 numbers, in every metrics.json) costs more than it shows


@torch.no_grad()
def evaluate(model: Callable[[Tensor], Tensor], batches: Iterable[tuple[Tensor, Tensor, Tensor]],
             num_classes: int, dist: Distributed | None = None) -> dict[str, Any]:
    """top-1 / top-5 accuracy (%), mean cross-entropy, per-class accuracy and the confusion matrix
    (rows: true class, columns: predicted; up to CONFUSION_MAX_CLASSES classes) on ``batches``
    (under torchrun, each process's share of them, summed over all processes). A compiled program
    gets a short last batch zero-padded to the first batch's size: a new shape would cost it a
    compile (seconds to a minute) for a handful of images."""
    if isinstance(model, nn.Module):
        model.eval()
    k = min(5, num_classes)
    sums: dict[str, Tensor] = {}  # on the model's device: no host sync per batch
    n = 0
    pad_to = None
    for images, labels, _ in batches:
        if getattr(model, "compiled", False):
            pad_to = pad_to or images.shape[0]
            logits = model(_padded(images, pad_to))[:images.shape[0]].float()
        else:
            logits = model(images).float()
        labels = labels.to(logits.device)
        best = logits.topk(k, dim=1).indices
        correct = best[:, 0] == labels
        part = {"loss": F.cross_entropy(logits, labels, reduction="sum").double(),
                "top1": correct.sum(), "topk": (best == labels[:, None]).any(dim=1).sum(),
                "hits": torch.bincount(labels, weights=correct.double(), minlength=num_classes),
                "seen": torch.bincount(labels, minlength=num_classes)}
        if num_classes <= CONFUSION_MAX_CLASSES:
            part["confusion"] = torch.bincount(labels * num_classes + best[:, 0], minlength=num_classes * num_classes)
        sums = part if not sums else {key: sums[key] + part[key] for key in sums}
        n += labels.numel()
    if dist is not None and dist.enabled:
        device = next((t.device for t in sums.values()), torch.device("cpu"))
        zero = {"loss": torch.zeros((), dtype=torch.float64), "top1": torch.zeros((), dtype=torch.int64),
                "topk": torch.zeros((), dtype=torch.int64), "hits": torch.zeros(num_classes, dtype=torch.float64),
                "seen": torch.zeros(num_classes, dtype=torch.int64)}
        if num_classes <= CONFUSION_MAX_CLASSES:
            zero["confusion"] = torch.zeros(num_classes * num_classes, dtype=torch.int64)
        sums = dist.sum_tensors({k: (sums[k] if sums else zero[k].to(device)).clone() for k in zero})
        n = int(sums["seen"].sum())
    if n == 0:
        return {"top1": None, "top5": None, "loss": None, "samples": 0, "per_class_top1": [], "confusion": None}
    per_class = [round(100.0 * int(h) / s, 3) if s else None
                 for h, s in zip(sums["hits"].tolist(), sums["seen"].tolist())]
    return {"top1": 100.0 * sums["top1"].item() / n, "top5": 100.0 * sums["topk"].item() / n,
            "loss": sums["loss"].item() / n,
            "samples": n, "per_class_top1": per_class,
            "confusion": sums["confusion"].view(num_classes, num_classes).tolist() if "confusion" in sums else None}


def _padded(images: Tensor, size: int) -> Tensor:
    if images.shape[0] >= size:
        return images
    pad = images.new_zeros(size - images.shape[0], *images.shape[1:])
    return torch.cat([images, pad]).contiguous(memory_format=torch.channels_last) \
        if images.dim() == 4 and images.is_contiguous(memory_format=torch.channels_last) else torch.cat([images, pad])


def count_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def count_nonzero_params(model: nn.Module) -> int:
    return sum(int(torch.count_nonzero(p)) for p in model.parameters())


def count_macs(model: nn.Module, input_shape: tuple[int, ...], device: torch.device | str = "cpu") -> int | None:
    """Multiply-accumulates of one forward pass on one image (FLOPs / 2, counted by torch)."""
    from torch.utils.flop_counter import FlopCounterMode

    was_training = model.training if isinstance(model, nn.Module) else False
    try:
        if isinstance(model, nn.Module):
            model.eval()
        x = torch.zeros(1, *input_shape, device=device)
        with torch.no_grad(), FlopCounterMode(display=False) as counter:
            model(x)
        return int(counter.get_total_flops() // 2)
    except Exception:  # exported / quantized programs may hold ops the counter does not know
        return None
    finally:
        if was_training:
            model.train()


def compute_device(model: Callable[[Tensor], Tensor], requested: torch.device | str) -> torch.device:
    """Where ``model`` computes: a model file's runner says (an int8 .pt2 program runs on the CPU, an ONNX
    session where its provider does), an eager module where it was placed (``requested``)."""
    own = getattr(model, "compute_device", None)
    return own if isinstance(own, torch.device) else torch.device(requested)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


@torch.no_grad()
def latency_stats(model: Callable[[Tensor], Tensor], input_shape: tuple[int, ...], batch: int,
                  device: torch.device | str = "cpu", warmup: int = 3, repeats: int = 10,
                  channels_last: bool = False) -> tuple[float, float]:
    """(median, interquartile range) in ms of one forward pass at ``batch``, after ``warmup``
    passes, with torch.utils.benchmark's blocked autorange. On a shared machine the spread
    says how far the median can be trusted."""
    from distillcli.quiet import quiet

    with quiet():  # its import warns about a missing CUDA toolkit on CPU-only machines
        from torch.utils.benchmark import Timer
    device = compute_device(model, device)
    if isinstance(model, nn.Module):
        model.eval()
    x = torch.rand(batch, *input_shape, device=device)
    if channels_last and x.dim() == 4:
        x = x.contiguous(memory_format=torch.channels_last)
    for _ in range(warmup):
        model(x)
    _sync(device)
    # torch.utils.benchmark times blocks of calls (syncing CUDA itself) until min_run_time is
    # spent, so a fast model gets many samples and a slow one at least a few
    timer = Timer("model(x)", globals={"model": model, "x": x}, num_threads=torch.get_num_threads())
    m = timer.blocked_autorange(min_run_time=0.02 * max(repeats, 2))
    times = [1000.0 * t for t in m.times]
    if len(times) < 4:  # too few blocks for quartiles: time single calls instead
        times += [1000.0 * timer.timeit(1).median for _ in range(4 - len(times))]
    q1, _, q3 = statistics.quantiles(times, n=4, method="inclusive")
    return statistics.median(times), q3 - q1


def alternated_latency(models: Sequence[Callable[[Tensor], Tensor]], input_shape: tuple[int, ...], batch: int,
                       device: torch.device | str = "cpu", repeats: int = 10, channels_last: bool = False,
                       rounds: int = 3) -> list[tuple[float, float]]:
    """(median, IQR) in ms of each model at ``batch``, timed in rounds (a, b, c, a, b, c ...), so that
    load from other processes hits all alike: their ratios are what can be trusted."""
    medians: list[list[float]] = [[] for _ in models]
    spreads: list[list[float]] = [[] for _ in models]
    for _ in range(rounds):
        for i, model in enumerate(models):
            median, iqr = latency_stats(model, input_shape, batch, device, repeats=max(2, repeats // rounds),
                                        channels_last=channels_last)
            medians[i].append(median)
            spreads[i].append(iqr)
    return [(statistics.median(m), statistics.median(s)) for m, s in zip(medians, spreads)]


def interleaved_latency(before: Callable[[Tensor], Tensor], after: Callable[[Tensor], Tensor],
                        input_shape: tuple[int, ...], batches: Iterable[int], device: torch.device | str = "cpu",
                        repeats: int = 10, channels_last: bool = False,
                        rounds: int = 3) -> tuple[dict[str, tuple[float, float]], dict[str, tuple[float, float]]]:
    """(median, IQR) per batch size of two models timed in alternation (see ``alternated_latency``)."""
    out: tuple[dict[str, tuple[float, float]], dict[str, tuple[float, float]]] = ({}, {})
    for b in batches:
        out[0][str(b)], out[1][str(b)] = alternated_latency((before, after), input_shape, b, device, repeats,
                                                            channels_last, rounds)
    return out


def latency_ms(model: Callable[[Tensor], Tensor], input_shape: tuple[int, ...], batch: int,
               device: torch.device | str = "cpu", warmup: int = 3, repeats: int = 10,
               channels_last: bool = False) -> float:
    """Median wall time (ms) of one forward pass at ``batch``."""
    return latency_stats(model, input_shape, batch, device, warmup, repeats, channels_last)[0]


def measure_model(module: Callable[[Tensor], Tensor], batches: Iterable[tuple[Tensor, Tensor, Tensor]],
                  num_classes: int, input_shape: tuple[int, int, int], device: torch.device,
                  latency_batches: Iterable[int] = (1, 64), repeats: int = 10,
                  channels_last: bool = False, dist: Distributed | None = None) -> dict[str, Any]:
    """Every per-model measure of the report (file size is added by whoever writes the file)."""
    out: dict[str, Any] = evaluate(module, batches, num_classes, dist)
    where = compute_device(module, device)
    if isinstance(module, nn.Module):
        out["params"] = count_params(module)
        out["nonzero_params"] = count_nonzero_params(module)
        out["macs"] = count_macs(module, input_shape, where)
    stats = {str(b): latency_stats(module, input_shape, b, where, repeats=repeats, channels_last=channels_last)
             for b in latency_batches}
    out["latency_ms"] = {b: median for b, (median, _) in stats.items()}
    out["latency_iqr_ms"] = {b: iqr for b, (_, iqr) in stats.items()}
    first = getattr(module, "first_call_s", None)  # a program: its first call per shape, the compile when compiled
    if isinstance(first, dict):
        out["first_call_s"] = dict(first)
    out["threads"] = torch.get_num_threads()
    out["device"] = str(where)
    runtime = getattr(module, "runtime", None)
    if isinstance(runtime, str):
        out["runtime"] = runtime
    return out
