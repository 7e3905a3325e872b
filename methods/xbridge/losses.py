"""XBridge's optimal-transport alignment loss between two token sequences of different lengths.

H  = the frozen NMT encoder's states of the LLM's English output z (k tokens, language tag and </s>
     included, no mapping), the "source" distribution;
H' = Map_dec(penultimate LLM states of z) (m slots), the decoder's cross-attention memory.
Cost C_ij = 1 - cos(H_i, H'_j). Mass of token i = ||H_i||_2 / sum_k ||H_k||_2, DETACHED [CODE];
the paper words it as "normalising the l1 norms" while the code takes L2 norms.

* `relaxed_ot` [CODE]: the one-sided relaxation (Kusner et al. 2015, RWMD): only the source marginal
  is enforced, so every source token sends all its mass to its cheapest target slot:
  L = sum_i m_i * min_j C_ij. Closed form, no iterations. Computed with a normalised matmul rather
  than the official (B, k, m, d) expand (same value, less memory).
* `entropic_ot` (our option) [choice: OT]: the full (two-marginal) entropic OT cost <P*, C> solved by POT's
  `ot.sinkhorn2` per sample (log-domain `sinkhorn_log`, stable at small `reg`; torch backend, differentiable),
  source masses as above and target masses ||H'_j|| / sum ||H'_l|| (detached).
Both return one value per sample; padded positions (mask 0) carry no mass and are never chosen.
"""

from __future__ import annotations

import torch

BIG = 4e6  # [CODE] the cost given to masked pairs


def cosine_cost(h: torch.Tensor, h2: torch.Tensor) -> torch.Tensor:
    """(B, k, d), (B, m, d) -> (B, k, m) of 1 - cos."""
    a = torch.nn.functional.normalize(h.float(), dim=-1, eps=1e-8)
    b = torch.nn.functional.normalize(h2.float(), dim=-1, eps=1e-8)
    return 1.0 - a @ b.transpose(1, 2)


def norm_mass(h: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Detached mass per token: L2 norm / sum of the row's L2 norms (0 on padding)."""
    n = h.detach().float().norm(dim=-1) * mask.float()
    return n / n.sum(-1, keepdim=True).clamp(min=1e-12)


def relaxed_ot(h: torch.Tensor, h_mask: torch.Tensor, h2: torch.Tensor, h2_mask: torch.Tensor) -> torch.Tensor:
    """Per-sample sum_i m_i * min_j (1 - cos(h_i, h2_j)) over valid i, j."""
    cost = cosine_cost(h, h2).masked_fill(~h2_mask.bool()[:, None, :], BIG)
    return (norm_mass(h, h_mask) * cost.min(-1).values.masked_fill(~h_mask.bool(), 0.0)).sum(-1)


def entropic_ot(h: torch.Tensor, h_mask: torch.Tensor, h2: torch.Tensor, h2_mask: torch.Tensor,
                reg: float = 0.1, iters: int = 100) -> torch.Tensor:
    """Per-sample entropic OT cost <P, C> (POT `sinkhorn2`), masses from the detached norms of each side."""
    import ot

    cost = cosine_cost(h, h2)
    a_all, b_all = norm_mass(h, h_mask), norm_mass(h2, h2_mask)
    out = []
    for r in range(h.shape[0]):
        i, j = h_mask[r].bool(), h2_mask[r].bool()
        if not i.any() or not j.any():
            out.append(cost.new_zeros(()))
            continue
        c = cost[r][i][:, j]
        a, b = a_all[r][i], b_all[r][j]
        out.append(ot.sinkhorn2(a, b, c, reg, method="sinkhorn_log", numItermax=iters, stopThr=1e-9))
    return torch.stack(out)
