"""The analyses, one sub-package per thing a user does (each module's docstring says its one job):

    verify.py   prove the model: which hidden state equals which site (`lamina verify`)
    sources/    where every analysis reads activations: one interface, a live model or a store
    profile/    laminar profiles over a corpus (`lamina profile`)
    tuning/     neuron tuning to a contrast, its design, controls and comparisons (`lamina tune`, `tune-compare`)
    neurons/    one neuron's drivers: gradient ascent, discrete search, top examples (`maximize`, `top-examples`)
    vocab/      through the vocabulary: projections, the logit lens (`project`, `logit-lens`)
    causal/     edits and their effects: ablate, patch, steer, a tune run tested causally (`ablate`, `patch`, `steer`)
"""
