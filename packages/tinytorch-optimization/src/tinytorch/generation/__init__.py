"""Module 17: memoization for autoregressive generation (the KV cache)."""
