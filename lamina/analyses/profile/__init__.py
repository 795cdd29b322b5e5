"""Laminar profiles: per-layer streaming statistics of a site kind over a corpus (`lamina profile`)."""
