"""Module 19: statistically sound benchmarking and the TinyMLPerf tasks."""
