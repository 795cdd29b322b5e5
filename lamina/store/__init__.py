"""The activation store: independent safetensors shards, a manifest keyed by the settings, checksums."""
from lamina.store.reader import ActivationStore

__all__ = ["ActivationStore"]
