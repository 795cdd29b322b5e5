"""A planted neuron: set one MLP neuron's input weights so it responds to chosen tokens (a known answer).

The neuron reads the (normed) residual stream with the sum of the chosen tokens' embedding rows, scaled:
early in a random model the residual is dominated by the token embedding, so the neuron's pre-activation
is large for those tokens and near zero otherwise. Gated MLPs get the vector in both the gate and the up
row (act(s) * s is large only where s is). `silent=True` also zeroes the neuron's output weights, so
nothing downstream changes and every other neuron of the model keeps its null behaviour.
"""
from __future__ import annotations

import torch

from lamina.errors import InputError, UnsupportedArchitectureError
from lamina.models.language_model import check_neuron_index, projection_weight


def plant_neuron(lm, layer: int, neuron: int, token_ids, scale: float = 8.0, silent: bool = True) -> torch.Tensor:
    """Make `mlp_post.{layer}:{neuron}` respond to `token_ids`; returns the input vector written [d_model].

    The vector is scale * sqrt(d_model) * u, u the unit sum of the tokens' embedding rows: with an RMS-normed
    input of norm sqrt(d_model), a token whose embedding points along u gets a pre-activation of about
    scale * d_model * cos. Changes the model in place.
    """
    family, block = lm.anatomy.family, lm.anatomy.block(layer)
    ids = torch.as_tensor(sorted({int(i) for i in token_ids}), dtype=torch.long)
    if ids.numel() == 0:
        raise InputError("plant_neuron needs at least one token id")
    if not family.mlp_in:
        raise UnsupportedArchitectureError(f"family '{family.name}' names no MLP input projections")
    (site,) = lm.sites([f"mlp_post.{layer}"])
    check_neuron_index(site, neuron, lm.site_widths([site])[site.name])
    with torch.no_grad():
        direction = lm.embedding_matrix()[ids].sum(0)
        vector = scale * lm.anatomy.d_model ** 0.5 * direction / direction.norm()
        for role, path in family.mlp_in.items():
            w = projection_weight(lm.model.get_submodule(f"{block}.{path}"))
            if role == "gate_up":  # fused [gate | up]
                half = w.shape[0] // 2
                w[neuron] = vector.to(w.dtype)
                w[half + neuron] = vector.to(w.dtype)
            else:
                w[neuron] = vector.to(w.dtype)
        for path in family.mlp_in.values():  # a bias would shift the threshold: zero it
            bias = getattr(lm.model.get_submodule(f"{block}.{path}"), "bias", None)
            if bias is not None and bias.ndim == 1 and bias.shape[0] > neuron:
                bias[neuron] = 0.0
        if silent:
            down = projection_weight(lm.model.get_submodule(f"{block}.{family.mlp_down}"))  # [d_model, n_neurons]
            down[:, neuron] = 0.0
    return vector
