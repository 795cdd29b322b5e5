"""lamina's version, in a module of its own so that low layers (the store's manifest) can read it."""
__version__ = "0.1.0"
