"""What LANDeRMT's analysis found, as a dict for results.json and as a PNG heat map next to the artifact."""

from __future__ import annotations

from pathlib import Path

import torch

from methods.landermt.routing import Plan


def summarise(plan: Plan, shift: dict[str, torch.Tensor], n_trainable: int) -> dict:
    """Layers chosen per pair, neuron counts, overlap between pairs (shared layers, Jaccard of the specific
    neurons over the layers both chose)."""
    width = {layer: len(plan.general[layer]) for layer in plan.general}
    per_pair = {}
    for p in plan.pairs:
        per_pair[p] = {"layers": plan.layers[p],
                       "general_neurons": sum(len(plan.general[i]) for i in plan.layers[p]),
                       "specific_neurons": sum(len(plan.specific[i].get(p, [])) for i in plan.layers[p]),
                       "layer_shift": [round(float(x), 4) for x in shift[p]]}
    overlap = {}
    for a, p in enumerate(plan.pairs):
        for q in plan.pairs[a + 1:]:
            shared = sorted(set(plan.layers[p]) & set(plan.layers[q]))
            sp = {(i, j) for i in shared for j in plan.specific[i].get(p, [])}
            sq = {(i, j) for i in shared for j in plan.specific[i].get(q, [])}
            overlap[f"{p}|{q}"] = {"shared_layers": len(shared),
                                   "specific_jaccard": round(len(sp & sq) / len(sp | sq), 4) if sp | sq else None}
    return {"pairs": per_pair, "general_per_layer": {str(k): v for k, v in width.items()},
            "overlap": overlap, "trainable_parameters": n_trainable, "gating": plan.gating,
            "gate_scale": plan.gate_scale}


def heatmap(plan: Plan, shift: dict[str, torch.Tensor], scores: dict[int, dict[str, torch.Tensor]], path: Path) -> None:
    """Top: layer shift D per pair × layer (chosen layers boxed). Below, one panel per chosen layer: each
    pair's awareness (normalised to its mean, log scale) over the neurons sorted by summed awareness; the
    line marks the end of the general neurons."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    layers = sorted(plan.general)
    n_pairs = len(plan.pairs)
    fig, axes = plt.subplots(1 + len(layers), 1, figsize=(10, 1.2 + 0.28 * n_pairs * (1 + len(layers)) + len(layers)),
                             squeeze=False)
    ax = axes[0][0]
    d = torch.stack([shift[p] / shift[p].max().clamp_min(1e-30) for p in plan.pairs]).numpy()
    ax.imshow(d, aspect="auto", cmap="viridis")
    for r, p in enumerate(plan.pairs):
        for i in plan.layers[p]:
            ax.add_patch(plt.Rectangle((i - 0.5, r - 0.5), 1, 1, fill=False, edgecolor="red", lw=1.2))
    ax.set_yticks(range(n_pairs), plan.pairs, fontsize=7)
    ax.set_xticks(range(d.shape[1]))
    ax.tick_params(axis="x", labelsize=6)
    ax.set_xlabel("layer", fontsize=8)
    ax.set_title("layer shift |mean h_i - mean h_{i-1}| / max (red: chosen layers)", fontsize=9)
    for k, layer in enumerate(layers):
        ax = axes[k + 1][0]
        phi = torch.stack([scores[layer][p] / scores[layer][p].mean().clamp_min(1e-30) for p in plan.pairs])
        order = phi.sum(0).argsort(descending=True)
        ax.imshow(phi[:, order].clamp_min(1e-6).log10().numpy(), aspect="auto", cmap="magma", interpolation="nearest")
        ax.axvline(len(plan.general[layer]) - 0.5, color="cyan", lw=1)
        ax.set_yticks(range(n_pairs), plan.pairs, fontsize=7)
        ax.set_title(f"layer {layer}: log10 awareness / mean, neurons sorted by total (left of cyan: general)",
                     fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def mechanism_text(analysis: dict | None) -> str:
    """The mechanism check from a run's recorded analysis: the layers and specific-neuron counts chosen per pair,
    and a warning when every pair chose the same layers (the layer analysis is then pair-independent)."""
    pairs = (analysis or {}).get("pairs") or {}
    if not pairs:
        return "not recorded: this run's config has no `analysis`"
    metric = (analysis or {}).get("layer_metric", "l2")
    layers = {p: ",".join(map(str, v.get("layers", []))) for p, v in pairs.items()}
    neurons = ", ".join(f"{p} {v.get('specific_neurons', '?')}" for p, v in pairs.items())
    general = next(iter(pairs.values())).get("general_neurons", "?")
    if len(set(layers.values())) == 1 and len(pairs) > 1:
        head = (f"layers {next(iter(layers.values()))} for all {len(pairs)} pairs: the layer analysis ({metric}) "
                f"did not separate pairs")
    else:
        head = "layers " + "; ".join(f"{p} {v}" for p, v in layers.items()) + f" (analysis: {metric})"
    return f"{head}; specific neurons {neurons}; general neurons {general} per pair"
