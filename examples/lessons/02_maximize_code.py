"""Lesson 2, activation maximization in code: the loop written out, and the activation step by step.

Question: how does gradient ascent on a neuron's input embeddings proceed, step by step?

    python examples/lessons/02_maximize_code.py [--model M] [--quick] [--out DIR]

The same loop as lamina.analyses.neurons.maximize.ascend without the options: the hook on the neuron's site
keeps the autograd graph (detach=False) and stops the forward pass once the site is stored, so the
blocks after the neuron's layer and the unembedding never run. The figure is the activation against the
step, with the re-scored activation of the decoded tokens as a line: the gap is lesson 1's point.
"""
import torch
from common import Lesson

from lamina.capture import Capture, StopForward


def main(argv=None):
    L = Lesson(__doc__, __file__, argv)
    lm, steps = L.lm, L.pick(10, 40)
    site, index = lm.neuron(L.default_neuron())
    E = lm.embedding_matrix()                                            # [vocab, d_model]
    r = E.norm(dim=-1).mean()                                            # typical embedding norm
    torch.manual_seed(0)
    v = E[torch.randint(len(E), (5,))].clone().requires_grad_(True)     # [5, d_model] soft tokens
    opt = torch.optim.Adam([v], lr=0.1 * float(E.std()))
    curve = []
    for step in range(steps):
        with torch.enable_grad(), Capture(lm.model, lm.anatomy, [site], detach=False) as cap:
            try:
                lm.model.base_model(inputs_embeds=v[None], use_cache=False)
            except StopForward as stop:
                if stop.owner is not cap:
                    raise
            a = cap.values[site.name][0, -1].flatten()[index]              # the neuron at the last position
            loss = -a + ((v.norm(dim=-1) - r) / r).pow(2).mean()         # stay near the embedding norm
            (v.grad,) = torch.autograd.grad(loss, [v])
        opt.step()
        curve.append(float(a.detach()))
        if step % 20 == 0:
            print(f"step {step:3d}: activation {curve[-1]:.3f}")
    cos = torch.nn.functional.normalize(v.detach(), dim=-1) @ torch.nn.functional.normalize(E, dim=-1).T
    ids = cos.argmax(-1).tolist()                                        # nearest token of each vector
    real = float(lm.capture({"input_ids": torch.tensor([ids])}, [site])[site.name][0, -1].flatten()[index])
    text = lm.tokenizer.decode(ids)
    print(f"optimised {curve[-1]:.3f}; decoded {text!r} re-scores to {real:.3f}")
    plt = L.plt()
    fig, ax = plt.subplots(figsize=(5, 3.2))
    ax.plot(range(steps), curve, label="soft vectors (optimised)")
    ax.axhline(real, color="C3", ls="--", label=f"decoded tokens (re-scored): {real:.2f}")
    ax.set_xlabel("step")
    ax.set_ylabel(f"activation of {site.name}:{index}")
    ax.legend(fontsize=7)
    L.figure(fig, "activation_vs_step")
    return L.finish({"neuron": f"{site.name}:{index}", "steps": steps, "curve": curve, "final": curve[-1],
                     "decoded": text, "rescored": real},
                    look="the curve climbing step by step; the dashed re-scored line far below its end")


if __name__ == "__main__":
    main()
