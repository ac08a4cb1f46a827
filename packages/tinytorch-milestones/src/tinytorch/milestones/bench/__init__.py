"""Side-by-side benchmarks: tinytorch, the hand-written NumPy floor, PyTorch on CPU.

``workloads`` builds each model three ways with identical weights,
``floors`` holds the NumPy models with manual backward passes,
``torch_models`` the PyTorch versions, ``harness`` the interleaved timer,
the report and the command-line entry shared by ``tito benchmark`` and
``benchmarks/run.py``.
"""
