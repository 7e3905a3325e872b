"""Finding LANDeRMT's language-aware neurons: FFN sites, layer analysis, Taylor awareness, the split.

A neuron j of layer i is the j-th input of the MLP's output projection (= the j-th output of its input
projections): for a gated MLP (Llama/Qwen/Gemma) row j of gate_proj and up_proj plus column j of
down_proj; for a plain MLP (GPT-2 c_fc/c_proj, BLOOM/NeoX dense_h_to_4h/dense_4h_to_h, OPT fc1/fc2) row j
of the first and column j of the second. Its activation is what enters the output projection.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from tqdm.auto import tqdm

from harness.errors import HarnessError
from harness.training.trainer import collate, loss_fn

# (input projections, output projection) of the MLP shapes we know, tried in this order
MLP_SHAPES = [
    (("gate_proj", "up_proj"), "down_proj"),  # Llama, Qwen, Gemma, Mistral (gated)
    (("c_fc",), "c_proj"),  # GPT-2 (Conv1D)
    (("dense_h_to_4h",), "dense_4h_to_h"),  # BLOOM, GPT-NeoX, Falcon
    (("fc_in",), "fc_out"),  # GPT-J
    (("fc1",), "fc2"),  # OPT, Phi
]


@dataclass
class MLPSite:
    layer: int
    path: str  # module path of the module holding the projections, e.g. model.layers.3.mlp
    ins: tuple[str, ...]  # input projection names (children of `path`)
    out: str  # output projection name
    width: int  # neurons (intermediate size)


def decoder_layers(model) -> tuple[str, torch.nn.ModuleList]:
    """The ModuleList of decoder blocks: the first one with config.num_hidden_layers entries."""
    n = getattr(model.config, "num_hidden_layers", None)
    for name, mod in model.named_modules():
        if isinstance(mod, torch.nn.ModuleList) and len(mod) == n:
            return name, mod
    raise HarnessError(f"landermt: no list of {n} decoder layers found in {type(model).__name__}; "
                       f"this architecture is not supported")


def out_features(linear) -> int:
    return linear.nf if type(linear).__name__ == "Conv1D" else linear.out_features


def find_mlps(model) -> list[MLPSite]:
    prefix, layers = decoder_layers(model)
    sites = []
    for i, layer in enumerate(layers):
        for path, mod in layer.named_modules():
            children = dict(mod.named_children())
            shape = next(((ins, out) for ins, out in MLP_SHAPES if all(n in children for n in (*ins, out))), None)
            if shape:
                sites.append(MLPSite(i, f"{prefix}.{i}.{path}".rstrip("."), shape[0], shape[1],
                                     out_features(children[shape[0][0]])))
                break
        else:
            raise HarnessError(f"landermt: layer {i} of {type(model).__name__} has no MLP with projections named "
                               f"{' / '.join('+'.join(a) + '->' + b for a, b in MLP_SHAPES)}; not supported")
    return sites


def _batches(features: list[dict], size: int, pad: int):
    for s in range(0, len(features), size):
        yield collate(features[s:s + size], pad)


def layer_shift(model, features: list[dict], batch_size: int, pad: int, desc: str = "",
                metric: str = "l2") -> torch.Tensor:
    """D_i = || mean_n A_{i,n} - mean_n A_{i-1,n} ||_2 for every decoder layer i, where A_{i,n} is the mean
    over sample n's tokens of layer i's output (A_{-1} = the embeddings entering layer 0). `metric` relative divides
    D_i by || mean_n A_{i-1,n} ||; cosine is 1 − cos(mean_n A_{i,n}, mean_n A_{i-1,n}) (neither grows with the
    activation norm of a layer)."""
    _, layers = decoder_layers(model)
    dev = next(model.parameters()).device
    sums = [None] * (len(layers) + 1)
    cur: dict = {}

    def record(k):
        def hook(mod, args, kwargs, out=None):
            h = (args[0] if args else kwargs["hidden_states"]) if out is None else out
            h = h[0] if isinstance(h, tuple) else h
            m = cur["mask"]
            per_sample = (h.float() * m).sum(1) / m.sum(1)  # [B, d]
            sums[k] = per_sample.sum(0) if sums[k] is None else sums[k] + per_sample.sum(0)
        return hook

    handles = [layers[0].register_forward_pre_hook(record(0), with_kwargs=True)]
    handles += [layer.register_forward_hook(record(i + 1), with_kwargs=True) for i, layer in enumerate(layers)]
    try:
        with torch.no_grad():
            for b in tqdm(list(_batches(features, batch_size, pad)), desc=desc, leave=False):
                cur["mask"] = b["attention_mask"].to(dev)[..., None].float()
                model(input_ids=b["input_ids"].to(dev), attention_mask=b["attention_mask"].to(dev), use_cache=False)
    finally:
        for h in handles:
            h.remove()
    means = torch.stack(sums) / len(features)
    return shift_metric(means, metric).cpu()


def shift_metric(means: torch.Tensor, metric: str) -> torch.Tensor:
    """Per layer i, how far mean state i moved from mean state i−1 (`means`: [layers + 1, d]); see layer_shift."""
    now, before = means[1:], means[:-1]
    if metric == "cosine":
        return 1 - torch.nn.functional.cosine_similarity(now, before, dim=-1)
    d = (now - before).norm(dim=-1)
    return d / before.norm(dim=-1).clamp_min(1e-30) if metric == "relative" else d


def awareness(model, features: list[dict], layers: list[int], batch_size: int, pad: int,
              desc: str = "") -> dict[int, torch.Tensor]:
    """Phi(i, j) = sum over batches of mean over the batch's tokens of |h_j * dL/dh_j| for each layer i of
    `layers`, where h_j is neuron j's activation and L the translation NLL (teacher forcing). Hooks only: no
    parameter gradient is computed and no weight changes."""
    sites = {s.layer: s for s in find_mlps(model)}
    dev = next(model.parameters()).device
    scores: dict[int, torch.Tensor] = {}
    acts: dict[int, torch.Tensor] = {}
    cur: dict = {}

    def keep(i):
        def hook(mod, args):
            h = args[0]
            acts[i] = h

            def grad_hook(g):
                m = cur["mask"]
                s = ((h.detach().float() * g.float()).abs() * m).sum((0, 1)) / m.sum()
                scores[i] = s if i not in scores else scores[i] + s
            h.register_hook(grad_hook)
        return hook

    grads_were = [p.requires_grad for p in model.parameters()]
    for p in model.parameters():
        p.requires_grad_(False)
    handles = [model.get_input_embeddings().register_forward_hook(lambda m, a, out: out.requires_grad_(True))]
    handles += [model.get_submodule(f"{sites[i].path}.{sites[i].out}").register_forward_pre_hook(keep(i))
                for i in layers]
    try:
        for b in tqdm(list(_batches(features, batch_size, pad)), desc=desc, leave=False):
            b = {k: v.to(dev) for k, v in b.items()}
            cur["mask"] = b["attention_mask"][..., None].float()
            out = model(input_ids=b["input_ids"], attention_mask=b["attention_mask"], use_cache=False)
            loss, _ = loss_fn(out.logits, b, lam=0.0)
            loss.backward()
            acts.clear()
    finally:
        for h in handles:
            h.remove()
        for p, g in zip(model.parameters(), grads_were):
            p.requires_grad_(g)
    return {i: scores[i].cpu() for i in layers}


def split_neurons(scores: dict[str, torch.Tensor], general_ratio: float, threshold: float,
                  normalise: bool, rule: str = "na_mnmt") -> tuple[list[int], dict[str, list[int]]]:
    """One layer: (general neurons, {pair: its specific neurons}) from each pair's awareness [F].

    General (rule na_mnmt) = the top general_ratio of neurons by awareness summed over the pairs; (rule variance) =
    the general_ratio of neurons whose awareness varies least across the pairs. Every other neuron is specific to
    each pair p with Phi_p(j) > threshold * max_q Phi_q(j) (at least the most aware pair)."""
    pairs = list(scores)
    phi = torch.stack([scores[p].double() for p in pairs])  # [P, F]
    if normalise:
        phi = phi / phi.mean(1, keepdim=True).clamp_min(1e-30)
    n_general = round(general_ratio * phi.shape[1])
    # variance: least varying across pairs first (population variance; one pair: every neuron varies by 0)
    rank = -phi.var(0, unbiased=False) if rule == "variance" else phi.sum(0)
    general = torch.topk(rank, n_general).indices.sort().values if n_general else torch.zeros(0, dtype=torch.long)
    rest = torch.ones(phi.shape[1], dtype=torch.bool)
    rest[general] = False
    top = phi.max(0).values
    specific = {p: ((phi[k] > threshold * top) & rest & (top > 0)).nonzero().squeeze(1).tolist()
                for k, p in enumerate(pairs)}
    return general.tolist(), specific

