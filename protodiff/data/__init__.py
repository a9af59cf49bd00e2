"""Dataset sources (official on-disk formats) and the bundled generated set."""

from protodiff.data.base import DatasetSource, DataSourceConfig, LabeledImages
from protodiff.data.folder import Folder
from protodiff.data.shapes import Shapes

#: The core's dataset sources by registry name (registered by protodiff.builtins).
SOURCES: dict[str, type[DatasetSource]] = {"shapes": Shapes, "folder": Folder}

__all__ = ["SOURCES", "DataSourceConfig", "DatasetSource", "Folder", "LabeledImages", "Shapes"]
