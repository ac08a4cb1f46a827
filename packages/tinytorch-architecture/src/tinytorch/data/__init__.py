"""Data loading (module 08).

Import the submodule directly: ``from tinytorch.data.loader import DataLoader, TensorDataset``.
"""
