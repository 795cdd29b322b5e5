"""Reading through the vocabulary: neuron projections and the logit lens (`lamina project`, `lamina logit-lens`)."""
