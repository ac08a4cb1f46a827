"""Module 14: measuring models (parameters, FLOPs, memory, latency, per-layer profiles)."""
