"""LMS layers: y = base(x) + x·(V[a]·F[b])ᵀ on the MLP linears of any HF causal LM, routed by language.

* `RouteTable` maps a (src, tgt) pair to the row indices (a, b) of V and F. Rows 0..L-1 are the
  languages of the training pairs, row L is the shared route of Fuse Distillation.
* `Router` holds the route of the next forward pass, shared by every wrapped layer: one (a, b) for the
  whole batch (generation, grouped by pair) or one per row (training: mixed pairs in one batch, and the
  two FD routes of a batch stacked into one forward).
* `LMSLinear` wraps an `nn.Linear` or a GPT-2 `Conv1D` without touching it: the delta is added to its
  output, which equals x·(W + V·F)ᵀ + b, so the base weight can stay frozen and bit-identical.
* `attach` wraps the linears of every MLP block; `save_lms` / `load_lms` write and read only the V/F
  tensors (+ `lms.json`), `detach` puts the original modules back (to save trained base weights).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from harness.errors import HarnessError

LMS_FILE, LMS_META = "lms.safetensors", "lms.json"


@dataclass
class RouteTable:
    languages: list[str]  # row i of V and F belongs to languages[i]; row len(languages) is the shared route
    synthesis: str = "pair"  # pair: V[src]·F[tgt]; language: V[l]·F[l], l = the pair's `language_key` side
    language_key: str = "tgt"

    @classmethod
    def from_pairs(cls, pairs: list[str], synthesis: str, language_key: str) -> "RouteTable":
        return cls(sorted({lang for p in pairs for lang in p.split("-")}), synthesis, language_key)

    @property
    def shared(self) -> int:
        return len(self.languages)

    @property
    def n_rows(self) -> int:
        return len(self.languages) + 1

    def route(self, src: str | None, tgt: str | None) -> tuple[int, int] | None:
        """(V row, F row) of a language pair; None when a language has no row (the caller uses the shared route)."""
        idx = {lang: i for i, lang in enumerate(self.languages)}
        if self.synthesis == "language":
            key = tgt if self.language_key == "tgt" else src
            return (idx[key], idx[key]) if key in idx else None
        return (idx[src], idx[tgt]) if src in idx and tgt in idx else None

    def shared_route(self) -> tuple[int, int]:
        return (self.shared, self.shared)


class Router:
    """The route every LMS layer takes in the next forward: ints (whole batch) or LongTensors (one per row)."""

    def __init__(self, shared: int):
        self.shared = shared
        self.v: int | torch.Tensor = shared
        self.f: int | torch.Tensor = shared

    def set(self, v, f) -> None:
        self.v, self.f = v, f

    def use_shared(self) -> None:
        self.set(self.shared, self.shared)


def _is_conv1d(module: nn.Module) -> bool:
    """GPT-2-style Conv1D: weight (in, out), y = x·W + b (transformers.pytorch_utils.Conv1D)."""
    return type(module).__name__ == "Conv1D" and hasattr(module, "nf") and module.weight.dim() == 2


def linear_shape(module: nn.Module) -> tuple[int, int]:
    """(in_features, out_features) of an nn.Linear or Conv1D."""
    if isinstance(module, nn.Linear):
        return module.in_features, module.out_features
    if _is_conv1d(module):
        return module.weight.shape[0], module.nf
    raise TypeError(f"{type(module).__name__} is neither nn.Linear nor Conv1D")


class LMSLinear(nn.Module):
    """base(x) + (x·F[b]ᵀ)·V[a]ᵀ with V: (rows, out, d) ~ N(0, std²), F: (rows, d, in) = 0."""

    def __init__(self, base: nn.Module, rows: int, rank: int, std: float, router: Router,
                 generator: torch.Generator | None = None):
        super().__init__()
        n_in, n_out = linear_shape(base)
        w = base.weight
        self.base = base
        v = torch.randn(rows, n_out, rank, generator=generator, dtype=torch.float32).mul_(std)  # drawn on the CPU:
        self.V = nn.Parameter(v.to(device=w.device, dtype=w.dtype))  # the same init on every device
        self.F = nn.Parameter(torch.zeros(rows, rank, n_in, device=w.device, dtype=w.dtype))
        self.router = router  # a plain attribute (not a submodule): one router for all layers

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.base(x)
        a, b = self.router.v, self.router.f
        if isinstance(a, int):  # one route for the whole batch
            delta = (x @ self.F[b].transpose(0, 1)) @ self.V[a].transpose(0, 1)
        else:  # one route per row: batched matmuls over (batch, tokens, features)
            xb = x.reshape(a.shape[0], -1, x.shape[-1])
            delta = ((xb @ self.F[b].transpose(1, 2)) @ self.V[a].transpose(1, 2)).reshape(*x.shape[:-1], -1)
        return y + delta.to(y.dtype)


def find_targets(model: nn.Module, mlp_name: str, names: list[str]) -> list[tuple[str, nn.Module, str]]:
    """(full name, parent MLP module, attribute) of every linear to wrap: the nn.Linear/Conv1D children of each
    module called `mlp_name` (restricted to `names` when given)."""
    out = []
    for full, module in model.named_modules():
        if full.rsplit(".", 1)[-1] != mlp_name:
            continue
        for attr, child in module.named_children():
            if (not names or attr in names) and (isinstance(child, nn.Linear) or _is_conv1d(child)):
                out.append((f"{full}.{attr}", module, attr))
    if not out:
        raise HarnessError(f"lms: no linear layer found inside modules named {mlp_name!r}"
                           f"{f' with names {names}' if names else ''}; set lms mlp_name/targets to this model's "
                           f"MLP block and its linears (e.g. mlp + [up_proj, down_proj])")
    if names:
        missing = sorted(set(names) - {n.rsplit(".", 1)[-1] for n, _, _ in out})
        if missing:
            raise HarnessError(f"lms.targets: {missing} not found as linears inside {mlp_name!r} blocks")
    return out


def attach(model: nn.Module, table: RouteTable, rank: int, std: float, mlp_name: str = "mlp",
           targets: list[str] | None = None, train_base: bool = False, seed: int = 0) -> Router:
    """Wrap the MLP linears of `model` in place (V drawn from `seed`); freeze every base weight unless
    `train_base`. Returns the router."""
    if not train_base:
        for p in model.parameters():
            p.requires_grad_(False)
    router = Router(table.shared)
    gen = torch.Generator().manual_seed(seed)
    for _, parent, attr in find_targets(model, mlp_name, list(targets or [])):
        setattr(parent, attr, LMSLinear(getattr(parent, attr), table.n_rows, rank, std, router, gen))
    return router


def lms_layers(model: nn.Module) -> dict[str, LMSLinear]:
    return {name: m for name, m in model.named_modules() if isinstance(m, LMSLinear)}


def detach(model: nn.Module) -> None:
    """Put the original linears back (the V/F matrices are dropped from the model)."""
    for name, layer in lms_layers(model).items():
        parent_name, _, attr = name.rpartition(".")
        setattr(model.get_submodule(parent_name), attr, layer.base)


def count_parameters(model: nn.Module, table: RouteTable) -> dict:
    """Added parameters (all V/F rows), those the shared route alone needs (FD-Share inference), and the trainable
    ones."""
    layers = lms_layers(model)
    added = sum(m.V.numel() + m.F.numel() for m in layers.values())
    added_ids = {id(p) for m in layers.values() for p in (m.V, m.F)}
    base = sum(p.numel() for p in model.parameters() if id(p) not in added_ids)
    return {"base": base, "added": added, "added_shared_route": added // table.n_rows,
            "trainable": sum(p.numel() for p in model.parameters() if p.requires_grad),
            "wrapped_linears": len(layers), "languages": table.languages, "rows": table.n_rows}


def save_lms(model: nn.Module, folder: Path, table: RouteTable, meta: dict) -> None:
    """Write the V/F tensors of every wrapped layer (`lms.safetensors`) and how to rebuild them (`lms.json`)."""
    from safetensors.torch import save_file

    layers = lms_layers(model)
    tensors = {f"{n}.{k}": getattr(m, k).detach().contiguous().cpu() for n, m in layers.items() for k in ("V", "F")}
    save_file(tensors, str(folder / LMS_FILE))
    (folder / LMS_META).write_text(json.dumps({**meta, "languages": table.languages, "synthesis": table.synthesis,
                                               "language_key": table.language_key, "layers": sorted(layers)},
                                              indent=1) + "\n", encoding="utf-8")


def load_lms(model: nn.Module, folder: Path) -> tuple[Router, RouteTable, dict]:
    """Wrap `model` like at training time and load the saved V/F tensors into it (strict)."""
    from safetensors.torch import load_file

    if not (folder / LMS_META).exists() or not (folder / LMS_FILE).exists():
        raise HarnessError(f"{folder}: {LMS_META} or {LMS_FILE} missing; this is not an lms artifact (retrain it)")
    meta = json.loads((folder / LMS_META).read_text(encoding="utf-8"))
    table = RouteTable(meta["languages"], meta["synthesis"], meta["language_key"])
    router = attach(model, table, meta["rank"], 1.0, meta["mlp_name"], meta["targets"])
    layers = lms_layers(model)
    if sorted(layers) != meta["layers"]:
        raise HarnessError(f"{folder / LMS_META}: its layers do not match this model's MLP linears; "
                           f"the artifact was trained on another architecture")
    tensors = load_file(str(folder / LMS_FILE))
    with torch.no_grad():
        for name, m in layers.items():
            for k in ("V", "F"):
                getattr(m, k).copy_(tensors[f"{name}.{k}"])
    model.eval()
    return router, table, meta
