"""Configuration of `landermt` (LANDeRMT, Zhu et al., ACL 2024).

The paper's code is not public and its thresholds are unknown: every value marked [choice] below is ours,
a named entry of methods/landermt/README.md, "Choices where the paper is silent".
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from harness.config import added_option
from harness.training.data import TrainDataConfig
from harness.training.trainer import TrainConfig

ALMA_PAIRS = ["cs-en", "en-cs", "de-en", "en-de", "is-en", "en-is", "ru-en", "en-ru", "zh-en", "en-zh"]


@dataclass
class LANDeRMTConfig:
    """Detect language-aware FFN neurons, then fine-tune only them, routed by the language pair."""

    # which parallel data; each direction (src-tgt) is one route with its own specific neurons and gates
    data: TrainDataConfig = field(default_factory=lambda: TrainDataConfig(pairs=list(ALMA_PAIRS)))
    train: TrainConfig = field(default_factory=lambda: TrainConfig(lr=1e-4))  # optimisation of the selected
    # neurons and gates (a selective update tolerates a higher lr than full fine-tuning [choice: optimisation])
    # (1) representation analysis: per pair, the top_layers layers whose output moves the mean hidden state most
    top_layers: int = 4  # K [choice: number of layers K]
    # how a layer's movement is measured: l2 = ||mean h_i − mean h_(i−1)|| (the default until the dev ablation;
    # dominated by the few layers with large activations, so every pair picks the same layers), relative = that /
    # ||mean h_(i−1)||, cosine = 1 − cos(mean h_i, mean h_(i−1)) (the default: the only metric under which pairs chose
    # different layers in the ablation, at the same dev score) [choice: layer metric; README "Ablations"].
    # l2 is the legacy value: artifacts trained before the option existed keep their hashes and read as l2.
    layer_metric: Literal["l2", "relative", "cosine"] = added_option("cosine", legacy="l2")
    ra_samples: int = 32  # N training examples per pair for the layer analysis
    # (2) Taylor awareness |activation × dL/dactivation| of every FFN neuron in the chosen layers
    te_samples: int = 32  # training examples per pair for the awareness scores (forward + backward, no step)
    analysis_batch_size: int = 4  # examples per forward/backward pass of the analysis
    # (3) split (NA-MNMT's rule) [choice: split thresholds]: general = top general_ratio of neurons by awareness
    # summed over pairs; a remaining neuron is specific to every pair whose awareness exceeds
    # specific_threshold × its largest awareness over the pairs
    # rule of the split: na_mnmt (above; today's default) or variance (the paper's "awareness score variance", as we
    # read it: general = the general_ratio of neurons whose awareness varies least across pairs; the rest are specific
    # to the pairs above specific_threshold × the top pair's) [choice: split rule]
    split: Literal["na_mnmt", "variance"] = added_option("na_mnmt")
    general_ratio: float = 0.7  # ρ
    specific_threshold: float = 0.9
    normalise_scores: bool = True  # divide each pair's scores by their mean within the layer before the split, so
    # that a pair with a larger loss does not claim every neuron [choice: score normalisation]
    # (4) conditional awareness-based routing: g = sigmoid(w_p·x + b_p), one gate per pair and layer, mixes the
    # general (weight scale·g) and the pair's specific neurons (weight scale·(1 - g)).
    # output: scale their outputs (ours); input: scale their input x (the equation as read) [choice: gate form]
    gating: Literal["output", "input"] = "output"
    gate_scale: float = 2.0  # 2 with the zero-initialised gate (g = 0.5) leaves the model unchanged at step 0
    # [choice: gate scale]; 1 = the literal formula (both neuron groups start at half strength)

    def validate(self, where: str) -> None:
        from harness.errors import HarnessError

        if self.top_layers < 1 or self.ra_samples < 1 or self.te_samples < 1 or self.analysis_batch_size < 1:
            raise HarnessError(f"{where}: top_layers, ra_samples, te_samples and analysis_batch_size must be >= 1")
        if not 0 <= self.general_ratio <= 1 or not 0 < self.specific_threshold <= 1:
            raise HarnessError(f"{where}: general_ratio must be in [0, 1] and specific_threshold in (0, 1]")
        if self.layer_metric not in ("l2", "relative", "cosine") or self.split not in ("na_mnmt", "variance"):
            raise HarnessError(f"{where}: layer_metric must be l2, relative or cosine and split na_mnmt or variance")
        if self.gate_scale <= 0:
            raise HarnessError(f"{where}.gate_scale: must be > 0 (2 keeps the model unchanged at the start)")
