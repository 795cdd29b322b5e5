"""Gradient ascent on a neuron, written out: soft embeddings, a graph-keeping capture, early stop, Adam.

    python examples/maximize_code.py

The same loop as lamina.analyses.maximize.ascend without the options: the hook on the neuron's site
keeps the autograd graph (detach=False) and stops the forward pass once the site is stored, so the
blocks after layer 15 and the unembedding never run.
"""
import torch

import lamina
from lamina.capture import Capture, StopForward

lm = lamina.load()
site, index = lm.neuron("mlp_post.15:933")
E = lm.model.get_input_embeddings().weight.detach()                  # [vocab, d_model]
r = E.norm(dim=-1).mean()                                            # typical embedding norm
torch.manual_seed(0)
v = E[torch.randint(len(E), (5,))].clone().requires_grad_(True)     # [5, d_model] soft tokens
opt = torch.optim.Adam([v], lr=0.1 * float(E.std()))
for step in range(60):
    with torch.enable_grad(), Capture(lm.model, lm.anatomy, [site], detach=False) as cap:
        try:
            lm.model.base_model(inputs_embeds=v[None], use_cache=False)
        except StopForward as stop:
            if stop.owner is not cap:
                raise
        a = cap.values[site.name][0, -1, index]                      # the neuron at the last position
        loss = -a + ((v.norm(dim=-1) - r) / r).pow(2).mean()         # stay near the embedding norm
        (v.grad,) = torch.autograd.grad(loss, [v])
    opt.step()
    if step % 20 == 0:
        print(f"step {step:3d}: activation {float(a.detach()):.3f}")
cos = torch.nn.functional.normalize(v.detach(), dim=-1) @ torch.nn.functional.normalize(E, dim=-1).T
ids = cos.argmax(-1).tolist()                                        # nearest token of each vector
real = lm.capture({"input_ids": torch.tensor([ids])}, [site])[site.name][0, -1, index]
print(f"optimised {float(a.detach()):.3f}; decoded {lm.tokenizer.decode(ids)!r} re-scores to {float(real):.3f}")
