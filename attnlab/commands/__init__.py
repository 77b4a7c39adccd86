"""Subcommands of the ``attnlab`` CLI, one module each, each with ``register(subparsers)``."""
