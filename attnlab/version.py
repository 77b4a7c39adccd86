"""The package version, which the files attnlab writes record (``attnlab_version``)."""

__version__ = "0.1.0"
