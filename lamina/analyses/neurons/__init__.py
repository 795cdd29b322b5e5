"""What drives one neuron: gradient ascent on soft prompts, discrete search, top examples from a corpus
(`lamina maximize`, `lamina top-examples`)."""
