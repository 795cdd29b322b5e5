"""`lamina browse`: a local web app over an activation store and its neuron index."""
