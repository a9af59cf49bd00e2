"""Dataset sources (official on-disk formats) and the bundled generated set."""

from protodiff.data.base import DatasetSource, DataSourceConfig, LabeledImages
from protodiff.data.celeba import CelebA
from protodiff.data.chexpert import CheXpert
from protodiff.data.cifar10 import CIFAR10
from protodiff.data.digits import Digits
from protodiff.data.ffhq import FFHQ
from protodiff.data.fmnist import FashionMNIST
from protodiff.data.folder import Folder
from protodiff.data.shapes import Shapes

#: The core's dataset sources by registry name (registered by protodiff.builtins).
SOURCES: dict[str, type[DatasetSource]] = {
    "shapes": Shapes,
    "folder": Folder,
    "digits": Digits,
    "fmnist": FashionMNIST,
    "cifar10": CIFAR10,
    "celeba": CelebA,
    "ffhq": FFHQ,
    "chexpert": CheXpert,
}

__all__ = [
    "CIFAR10",
    "SOURCES",
    "CelebA",
    "CheXpert",
    "DataSourceConfig",
    "DatasetSource",
    "Digits",
    "FFHQ",
    "FashionMNIST",
    "Folder",
    "LabeledImages",
    "Shapes",
]
