"""Measuring one callable: the timer (warm-up, adaptive repeats, CUDA events), memory (measured peaks,
estimates before a point is built, the budget), which SDPA backend ran, the environment, and the
gradient-path probe behind `seqbench gradflow`."""
