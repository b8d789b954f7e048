"""lods: score distillation (LODS, SDS, CSD, VSD) for text- and image-to-3D."""

__version__ = "0.1.0"
