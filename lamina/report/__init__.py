"""Plots, tables and HTML pages for lamina's results."""
