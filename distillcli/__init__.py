"""distillcli: recipe-driven compression of PyTorch image models."""

__version__ = "0.1.0"
