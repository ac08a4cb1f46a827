"""Modules 15, 16 and 18: int8 quantization, pruning/distillation/low-rank compression, acceleration."""
