"""The package version, at the bottom of the layer order so any module can read it cheaply."""

__version__ = "0.1.0"
