"""LightningDataModules; every one yields images in [0, 1] and exposes shape and statistics."""

from prunelab.data.base import ImageDataModule, files_fingerprint
from prunelab.data.cifar10 import CIFAR10DataModule
from prunelab.data.fashion_mnist import FashionMNISTDataModule
from prunelab.data.sports import ImageFolderDataModule, SportsDataModule

__all__ = [
    "CIFAR10DataModule",
    "FashionMNISTDataModule",
    "ImageDataModule",
    "ImageFolderDataModule",
    "SportsDataModule",
    "files_fingerprint",
]
