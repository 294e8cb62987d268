"""Plain nn.Module architectures; normalisation is each net's first layer."""

from prunelab.models.layers import Normalize
from prunelab.models.resnet_small import ResNetSmall
from prunelab.models.simple_cnn import SimpleCNN

__all__ = ["Normalize", "ResNetSmall", "SimpleCNN"]
