"""Deep Compression size accounting, checked against counts done by hand."""

from __future__ import annotations

import torch
from torch import nn

from distillcli.compress.sharing import SharedLayer, huffman_lengths, layer_size, model_size, share_model


def test_huffman_code_lengths() -> None:
    # the textbook example (CLRS 16.3): f:45 gets 1 bit, c/d/e 3 bits, a/b 4 bits
    assert huffman_lengths([5, 9, 12, 13, 16, 45]) == [4, 4, 3, 3, 3, 1]
    assert huffman_lengths([0, 7, 0]) == [0, 1, 0]  # a lone symbol still takes a bit


def test_pruned_layer_by_hand() -> None:
    """10 weights, 3 non-zero at positions 1, 7, 8; K = 4 (zero + 3 centroids); 2-bit distances.

    distances 2, 6, 1: the 6 exceeds 2**2 = 4, so one filler -> 4 entries.
    pruning only: 4 x (2 + 32) = 136 bits; sharing: 4 x (2 + 2) + 3 x 32 (codebook) = 112.
    Huffman: codes {0, 1, 2, 3} once each -> 2 bits each = 8; distance symbols (d - 1) mod 4 =
    {1, 1, 0} plus the filler's 3 -> lengths 1, 2, 2 -> 6 bits; tables 8 x (4 + 4) = 64;
    codebook 96: 8 + 6 + 64 + 96 = 174 bits.
    """
    layer = SharedLayer(torch.tensor([0.0, 0.5, -0.5, 1.0]), torch.tensor([0, 2, 0, 0, 0, 0, 0, 1, 3, 0]), True, "conv")
    size = layer_size("w", layer, index_bits=2)
    assert (size.weights, size.nonzero, size.entries) == (10, 3, 4)
    assert (size.fp32_bits, size.pruned_bits, size.shared_bits, size.huffman_bits) == (320, 136, 112, 174)


def test_dense_layer_by_hand() -> None:
    """8 weights, K = 4, no zeros: 8 x 2 bits + 4 x 32 codebook = 144; Huffman over code
    frequencies {0: 5, 1: 1, 2: 1, 3: 1} -> lengths 1, 3, 3, 2 -> 5 + 3 + 3 + 2 = 13, + 32 + 128."""
    layer = SharedLayer(torch.tensor([-1.0, -0.5, 0.5, 1.0]), torch.tensor([0, 0, 0, 0, 0, 1, 2, 3]), False, "linear")
    size = layer_size("w", layer)
    assert (size.entries, size.index_bits, size.pruned_bits, size.shared_bits, size.huffman_bits) == \
        (8, 0, 256, 144, 173)


def test_model_totals_count_unshared_parameters_as_float32() -> None:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(64, 32), nn.Linear(32, 4, bias=False))
    report = model_size(model, share_model(model, clusters=4))
    summary = report.summary()
    other = 32  # the first layer's bias
    assert report.other_params == other
    assert summary["fp32_bytes"] == (64 * 32 + 32 * 4 + other) * 4
    assert summary["shared_bytes"] == ((64 * 32 + 32 * 4) * 2 + 2 * 4 * 32 + 32 * other) // 8
    assert summary["shared_ratio"] > 10
