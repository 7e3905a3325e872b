"""LANDeRMT's routed FFNs: trainable deltas on the selected neurons, mixed by a per-pair gate.

The base weights are never touched: each selected layer's projections are wrapped, and the update of a
neuron lives in separate delta tensors (rows of the input projections, columns of the output projection;
`general` shared by the pairs that chose the layer, `specific[pair]` per pair). So AdamW's weight decay
and momentum can only move the deltas, and an effective weight is base + delta on the selected neurons
only. Deltas start at zero, so an untrained artifact is the base model exactly (up to `gate_scale`).

Which neurons run updated and gated is decided by `Router.active`:
* a trained pair p, in a layer p chose: out = FFN_rest + s·g_p(x)·FFN_G + s·(1 - g_p(x))·FFN_{S_p} with
  G and S_p updated (`gating: output`; `input` scales the neurons' input x instead, eq. 7 as extracted);
* a trained pair p, in a layer it did not choose: the base layer;
* "" (no language pair: a non-translation prompt, or a pair that was not trained): the general neurons'
  update in every selected layer, ungated (coefficient 1), every other neuron as in the base model.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
from torch import nn

from methods.landermt.neurons import find_mlps


@dataclass
class Plan:
    """What the analysis decided (saved as landermt.json next to the trained deltas)."""

    pairs: list[str]
    layers: dict[str, list[int]]  # pair -> layers chosen by representation analysis
    general: dict[int, list[int]]  # layer -> general neurons (union of the chosen layers)
    specific: dict[int, dict[str, list[int]]]  # layer -> pair -> neurons specific to that pair (pairs that chose it)
    gating: str = "output"
    gate_scale: float = 2.0

    def to_json(self) -> dict:
        return asdict(self)

    @classmethod
    def from_json(cls, d: dict) -> Plan:
        return cls(pairs=d["pairs"], layers=d["layers"], general={int(k): v for k, v in d["general"].items()},
                   specific={int(k): v for k, v in d["specific"].items()}, gating=d["gating"],
                   gate_scale=d["gate_scale"])


class Router:
    """The route every wrapped layer reads: a trained pair such as 'de-en', or '' (general neurons only)."""

    def __init__(self, plan: Plan):
        self.plan = plan
        self.active = ""

    def key_for(self, pair: str) -> str:
        return pair if pair in self.plan.pairs else ""

    def set(self, pair: str) -> None:
        self.active = self.key_for(pair or "")


class LayerRoute(nn.Module):
    """One selected layer: its neuron sets, the per-pair gates, and the gate value of the current forward."""

    def __init__(self, router: Router, layer: int, hidden: int, dtype):
        super().__init__()
        plan = router.plan
        self.router, self.mode, self.scale = router, plan.gating, plan.gate_scale
        self.pairs = [p for p in plan.pairs if layer in plan.layers[p]]
        self.register_buffer("general", torch.tensor(plan.general[layer], dtype=torch.long), persistent=False)
        for p in self.pairs:  # buffers: they move with the model (no host-to-device copy per forward)
            self.register_buffer(f"spec_{p}", torch.tensor(plan.specific[layer].get(p, []), dtype=torch.long),
                                 persistent=False)
        # gate w_p·x + b_p, zero at init (g = 0.5); one per pair that chose this layer
        self.gates = nn.ParameterDict({p: nn.Parameter(torch.zeros(hidden + 1, dtype=dtype)) for p in self.pairs})
        self.g = None

    @property
    def spec(self) -> dict[str, torch.Tensor]:
        """pair -> its specific neurons in this layer."""
        return {p: getattr(self, f"spec_{p}") for p in self.pairs}

    def pair(self) -> str | None:
        """The active pair when it routes through this layer, '' for general-only, None for the base layer."""
        a = self.router.active
        return a if a in self.pairs else ("" if a == "" else None)

    def compute_gate(self, x: torch.Tensor, pair: str) -> None:
        w = self.gates[pair]
        self.g = torch.sigmoid(x @ w[:-1].to(x.dtype) + w[-1].to(x.dtype))[..., None]

    def groups(self, pair: str, device) -> list[tuple[torch.Tensor, torch.Tensor | float]]:
        """(neuron indices, coefficient) of the gated groups; [] when nothing is gated."""
        if pair == "":
            return []
        return [(self.general.to(device), self.scale * self.g), (self.spec[pair].to(device), self.scale * (1 - self.g))]


def _scale_cols(y: torch.Tensor, idx: torch.Tensor, k, bias: torch.Tensor | None) -> torch.Tensor:
    """y[..., idx] <- k * (y[..., idx] - bias) + bias (bias None = 0), differentiable."""
    if idx.numel() == 0:
        return y
    cols = y.index_select(-1, idx)
    b = 0 if bias is None else bias.index_select(0, idx).to(y.dtype)
    return y.index_add(-1, idx, (k * (cols - b) + b - cols).to(y.dtype))


class _Deltas(nn.Module):
    """Zero-initialised update rows of a neuron set: general (shared) and one per pair."""

    def __init__(self, route: LayerRoute, width: int, bias: bool, dtype):
        super().__init__()
        self.route = [route]  # a list: not a submodule (the route's parameters belong to one place)
        sizes = {"general": len(route.general), **{p: len(route.spec[p]) for p in route.pairs}}
        self.w = nn.ParameterDict({k: nn.Parameter(torch.zeros(n, width, dtype=dtype)) for k, n in sizes.items()})
        self.b = (nn.ParameterDict({k: nn.Parameter(torch.zeros(n, dtype=dtype)) for k, n in sizes.items()})
                  if bias else None)

    def active(self, pair: str, device) -> list[tuple[str, torch.Tensor]]:
        r = self.route[0]
        out = [("general", r.general.to(device))]
        if pair:
            out.append((pair, r.spec[pair].to(device)))
        return [(k, i) for k, i in out if i.numel()]


class RoutedIn(nn.Module):
    """An input projection (gate/up, c_fc, dense_h_to_4h, fc1): base(x) plus delta rows of the active neurons."""

    def __init__(self, base: nn.Module, route: LayerRoute):
        super().__init__()
        w = base.weight
        self.base = base
        d_in = w.shape[0] if type(base).__name__ == "Conv1D" else w.shape[1]
        self.route = [route]
        self.delta = _Deltas(route, d_in, getattr(base, "bias", None) is not None, w.dtype)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.base(x)
        r = self.route[0]
        pair = r.pair()
        if pair is None:
            return y
        if pair:  # every input projection sees the same x, so each may (re)compute the same gate
            r.compute_gate(x, pair)
        bias = self.base.bias
        for key, idx in self.delta.active(pair, y.device):
            add = x @ self.delta.w[key].to(x.dtype).T
            if self.delta.b is not None:
                add = add + self.delta.b[key].to(add.dtype)
                bias = bias.index_add(0, idx, self.delta.b[key].to(bias.dtype))
            y = y.index_add(-1, idx, add.to(y.dtype))
        if r.mode == "input":  # FFN_G(s·g·x): the neurons' pre-activations, bias excluded, scale with the input
            for idx, k in r.groups(pair, y.device):
                y = _scale_cols(y, idx, k, bias)
        return y


class RoutedOut(nn.Module):
    """The output projection (down_proj, c_proj, dense_4h_to_h, fc2): gated neuron inputs, delta columns."""

    def __init__(self, base: nn.Module, route: LayerRoute):
        super().__init__()
        w = base.weight
        self.base = base
        d_out = w.shape[1] if type(base).__name__ == "Conv1D" else w.shape[0]
        self.route = [route]
        self.delta = _Deltas(route, d_out, False, w.dtype)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        r = self.route[0]
        pair = r.pair()
        if pair is None:
            return self.base(h)
        if r.mode == "output":
            for idx, k in r.groups(pair, h.device):
                h = _scale_cols(h, idx, k, None)
        y = self.base(h)
        for key, idx in self.delta.active(pair, h.device):
            y = y + (h.index_select(-1, idx) @ self.delta.w[key].to(h.dtype)).to(y.dtype)
        return y


def install(model, plan: Plan) -> Router:
    """Freeze every base weight, wrap the selected layers' MLP projections; returns the router to set pairs on.

    Trainable afterwards: the deltas and the gates only (`requires_grad`)."""
    for p in model.parameters():
        p.requires_grad_(False)
    router = Router(plan)
    sites = {s.layer: s for s in find_mlps(model)}
    hidden = model.get_input_embeddings().weight.shape[1]
    dtype = next(model.parameters()).dtype
    for layer in sorted(plan.general):
        site = sites[layer]
        mlp = model.get_submodule(site.path)
        route = LayerRoute(router, layer, hidden, dtype)
        mlp.add_module("landermt_route", route)
        for name in site.ins:
            setattr(mlp, name, RoutedIn(getattr(mlp, name), route))
        setattr(mlp, site.out, RoutedOut(getattr(mlp, site.out), route))
    return router


def trainable_state(model) -> dict[str, torch.Tensor]:
    """The deltas and gates (what the artifact saves), by parameter name."""
    return {k: v.detach().cpu().contiguous() for k, v in model.named_parameters() if "landermt_route" in k
            or ".delta." in k}


def load_trainable(model, state: dict[str, torch.Tensor]) -> None:
    params = dict(model.named_parameters())
    missing = set(trainable_state(model)) - set(state)
    if missing:
        raise KeyError(f"artifact lacks {sorted(missing)[:3]}")
    with torch.no_grad():
        for k, v in state.items():
            params[k].copy_(v.to(params[k].dtype))


def effective_weights(model, plan: Plan, pair: str) -> dict[str, torch.Tensor]:
    """Dense weights (PyTorch Linear orientation, [out, in]) of every wrapped projection as the route `pair`
    runs them, ungated: base + delta on the active neurons. For tests and inspection."""
    out = {}
    for name, mod in model.named_modules():
        if isinstance(mod, (RoutedIn, RoutedOut)):
            w = mod.base.weight.detach().clone()
            w = w.T if type(mod.base).__name__ == "Conv1D" else w
            r = mod.route[0]
            key = pair if pair in r.pairs else ("" if pair == "" else None)
            if key is not None:
                for k, idx in mod.delta.active(key, w.device):
                    d = mod.delta.w[k].detach()
                    if isinstance(mod, RoutedIn):
                        w[idx] += d
                    else:
                        w[:, idx] += d.T
            out[name] = w
    return out
