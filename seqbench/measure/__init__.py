"""Measuring one callable: the timer (warm-up, adaptive repeats, CUDA events), peak memory, which SDPA
backend ran, the environment, and the gradient-path probe behind `seqbench gradflow`."""
