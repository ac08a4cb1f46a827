"""The benchmark suite: tinytorch, a hand-written NumPy floor and PyTorch, each in a fresh process.

Modules:

* ``params``: shapes and seeded initial weights of every model, one ``name -> ndarray`` dict
  loaded into all three implementations (so they compute the same numbers);
* ``floors``: the NumPy floor, each model written by hand with its backward pass;
* ``tt_models`` / ``torch_models``: the same models in tinytorch and in PyTorch;
* ``child``: what one fresh process runs (one workload, one implementation) and reports as JSON;
* ``harness``: the parent: launches children interleaved, pins threads, aggregates, prints tables;
* ``sweep``: scaling curves (batch, sequence length, width), JSON and a PNG plot.

Nothing here is installed with tinytorch: the suite lives in the repository's
``benchmarks/`` folder and is run from a checkout (``python benchmarks/run.py``).
"""
