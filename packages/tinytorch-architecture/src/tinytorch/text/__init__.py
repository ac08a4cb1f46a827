"""Text modules: tokenization (module 10) and embeddings (module 11).

Import the submodules directly, e.g. ``from tinytorch.text.tokenization import BPETokenizer``.
"""
