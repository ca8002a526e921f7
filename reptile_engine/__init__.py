"""Reptile Lab: a headless, vectorized PyTorch engine for Reptile meta-learning."""
