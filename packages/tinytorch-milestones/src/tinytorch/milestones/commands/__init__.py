"""Subcommands of ``tito``: each module here defines ``register(subparsers)``."""
