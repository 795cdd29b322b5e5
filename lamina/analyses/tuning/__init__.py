"""Neuron tuning to a contrast: the run, its settings, design, per-layer tests, controls, examples,
comparison of two runs, and the contrasts themselves (`lamina tune`, `lamina tune-compare`)."""
