"""Models built from the architecture modules (module 13: the transformer and GPT).

Import the submodule directly: ``from tinytorch.models.transformer import GPT``.
"""
