"""Module 20: the TinyGPT capstone, the whole stack end to end."""
