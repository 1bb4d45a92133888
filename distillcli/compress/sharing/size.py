"""Stored size after pruning, weight sharing and Huffman coding: the three stages of Deep
Compression (Han et al. 2016, sec. 2-4), counted in bits from the actual weights.

Per shared layer of n weights with K shared values (code width b = ceil(log2 K)):
  - a pruned layer is stored sparse: every non-zero weight as (distance from the previous
    non-zero, value); the distance takes ``index_bits`` bits (8 for convolutions, 5 for linear
    layers, as in the paper), and a gap longer than 2**index_bits costs a filler entry (a stored
    zero) every 2**index_bits positions. A dense layer stores n values and no indices;
  - pruning only: each value is a float32;
  - + sharing: each value is a b-bit code, plus the codebook (K float32; a pruned layer's
    zero is implicit);
  - + Huffman: the codes and the distances are Huffman-coded per layer (sum of frequency x
    code length), plus a table of one 8-bit code length per symbol of each alphabet.
Every other parameter (biases, BatchNorm, layers left out) counts 32 bits in all stages.
Buffers (BatchNorm running statistics) are not counted: they fold into the preceding layer.
"""

from __future__ import annotations

import heapq
import math
from dataclasses import asdict, dataclass
from typing import Any, Sequence

import torch
from torch import Tensor, nn

from distillcli.compress.sharing.kmeans import ZERO_CODE, SharedLayer

INDEX_BITS = {"conv": 8, "linear": 5}
TABLE_BITS = 8  # one code length per alphabet symbol


def huffman_lengths(freqs: Sequence[int]) -> list[int]:
    """Code length of each symbol of an optimal prefix code (0 for absent symbols; a lone
    symbol still takes one bit)."""
    present = [(f, i) for i, f in enumerate(freqs) if f > 0]
    lengths = [0] * len(freqs)
    if len(present) == 1:
        lengths[present[0][1]] = 1
        return lengths
    heap: list[tuple[int, int, list[int]]] = [(f, i, [i]) for f, i in present]
    heapq.heapify(heap)
    order = len(freqs)
    while len(heap) > 1:
        f1, _, s1 = heapq.heappop(heap)
        f2, _, s2 = heapq.heappop(heap)
        for symbol in s1 + s2:
            lengths[symbol] += 1
        heapq.heappush(heap, (f1 + f2, order, s1 + s2))
        order += 1
    return lengths


def huffman_bits(freqs: Sequence[int]) -> int:
    return sum(f * n for f, n in zip(freqs, huffman_lengths(freqs)))


@dataclass
class LayerSize:
    name: str
    weights: int
    nonzero: int
    entries: int  # stored entries: non-zeros plus fillers (pruned layers); all weights otherwise
    clusters: int
    index_bits: int  # 0 for a dense layer
    fp32_bits: int
    pruned_bits: int
    shared_bits: int
    huffman_bits: int


def sparse_symbols(codes: Tensor, pruned: bool, index_bits: int) -> tuple[Tensor, Tensor]:
    """(code, distance symbol) of every stored entry, fillers last (only the frequencies
    matter); for a dense layer the codes themselves and no distances."""
    flat = codes.reshape(-1).cpu()
    if not pruned:
        return flat, torch.zeros(0, dtype=torch.int64)
    span = 1 << index_bits
    positions = torch.nonzero(flat != ZERO_CODE).reshape(-1)
    gaps = torch.diff(positions, prepend=torch.tensor([-1]))
    fillers = (gaps - 1) // span
    entry_codes = torch.cat([flat[positions], torch.full((int(fillers.sum()),), ZERO_CODE)])
    entry_gaps = torch.cat([(gaps - 1) % span, torch.full((int(fillers.sum()),), span - 1)])
    return entry_codes, entry_gaps


def layer_size(name: str, layer: SharedLayer, index_bits: int | None = None) -> LayerSize:
    index_bits = INDEX_BITS[layer.kind] if index_bits is None else index_bits
    n, k = layer.codes.numel(), layer.clusters
    code_bits = max(1, math.ceil(math.log2(k)))
    codes, gaps = sparse_symbols(layer.codes, layer.pruned, index_bits)
    entries = codes.numel()
    idx = index_bits if layer.pruned else 0
    codebook = 32 * (k - 1 if layer.pruned else k)
    code_freqs = torch.bincount(codes, minlength=k).tolist()
    huffman = huffman_bits(code_freqs) + TABLE_BITS * k + codebook
    if layer.pruned:
        huffman += huffman_bits(torch.bincount(gaps, minlength=1 << index_bits).tolist()) + TABLE_BITS * (1 << index_bits)
    nonzero = int((layer.codes != ZERO_CODE).sum()) if layer.pruned else n
    return LayerSize(name, n, nonzero, entries, k, idx, 32 * n, entries * (idx + 32),
                     entries * (idx + code_bits) + codebook, huffman)


@dataclass
class SizeReport:
    layers: list[LayerSize]
    other_params: int  # parameters outside the shared weights, float32 in every stage

    def total(self, stage: str) -> int:
        """Bytes of the whole model at ``stage``: fp32 | pruned | shared | huffman."""
        bits = sum(getattr(layer, f"{stage}_bits") for layer in self.layers) + 32 * self.other_params
        return math.ceil(bits / 8)

    def summary(self) -> dict[str, Any]:
        fp32 = self.total("fp32")
        out: dict[str, Any] = {}
        for stage in ("fp32", "pruned", "shared", "huffman"):
            out[f"{stage}_bytes"] = self.total(stage)
            if stage != "fp32":
                out[f"{stage}_ratio"] = round(fp32 / self.total(stage), 2)
        weights = sum(layer.weights for layer in self.layers)
        out["shared_weight_sparsity"] = round(1 - sum(layer.nonzero for layer in self.layers) / max(weights, 1), 4)
        return out

    def rows(self) -> list[dict[str, Any]]:
        return [asdict(layer) for layer in self.layers]


def model_size(model: nn.Module, layers: dict[str, SharedLayer], index_bits: dict[str, int] | None = None) -> SizeReport:
    """Deep Compression storage of ``model`` whose ``layers`` are shared (see the module docstring)."""
    bits = {**INDEX_BITS, **(index_bits or {})}
    shared = {id(model.get_submodule(name).weight) for name in layers}
    other = sum(p.numel() for p in model.parameters() if id(p) not in shared)
    return SizeReport([layer_size(name, layer, bits[layer.kind]) for name, layer in layers.items()], other)
