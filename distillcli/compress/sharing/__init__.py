"""Weight sharing (Deep Compression): per-layer k-means, centroid fine-tuning, and the stored
size with pruning + sharing + Huffman coding."""

from distillcli.compress.sharing.kmeans import SharedLayer, kmeans_1d, share_model, share_weight, shareable_layers
from distillcli.compress.sharing.size import (
    INDEX_BITS, LayerSize, SizeReport, huffman_bits, huffman_lengths, layer_size, model_size,
)
from distillcli.compress.sharing.tuning import CentroidTuning, Reduce

__all__ = ["INDEX_BITS", "CentroidTuning", "LayerSize", "Reduce", "SharedLayer", "SizeReport", "huffman_bits",
           "huffman_lengths", "kmeans_1d", "layer_size", "model_size", "share_model", "share_weight",
           "shareable_layers"]
