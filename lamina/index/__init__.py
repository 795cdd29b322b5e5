"""The neuron index of an activation store: built in one streaming pass (`build`), read by slices (`read`)."""
from lamina.index.build import IndexSettings, write_index
from lamina.index.read import NeuronIndex

__all__ = ["IndexSettings", "NeuronIndex", "write_index"]
