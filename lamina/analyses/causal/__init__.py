"""Causal checks: edits (ablate, steer), their metrics, activation patching, and a tune run tested causally
(`lamina ablate`, `lamina patch`, `lamina steer`)."""
