"""`repro ablate`'s options as data: the `VariantFlag` declaration and the built-in methods' own options, with the
vocabularies they choose from. Nothing here imports torch, so `repro ablate --help` lists every option at once;
each method's `variant_flags` attribute is its tuple from here (a method from outside declares its own)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

ITEM_INITS = ("uniform", "gaussian")  # MNAD's memory: how the items start (repro.models.memory)
UPDATE_NORMALISERS = ("all", "assigned")  # MNAD's memory: eq. 5's normaliser over all or the assigned queries
ADDRESSINGS = ("dot", "cosine")  # MemAE's addressing


@dataclass(frozen=True)
class VariantFlag:
    """One `repro ablate` option that sets one config key in the variant only, declared as data by a method.

    A switch (`value` given) sets that value; any other option takes a value of `kind` (int, float, or a tuple
    of choices) within [low, high] (`low_open`, `high_open` exclude a bound); `bare` is its value when given
    without one. `per` names a config key whose value (in the variant) divides the given value: MemAE's
    threshold K/N per memory item. The variant's name gets `name` ("{value}" filled in)."""

    option: str  # without the dashes, e.g. "no-separateness"
    key: str  # e.g. "model.mnad.separateness"
    help: str
    value: Any = None
    kind: type | tuple[str, ...] = float
    low: float | None = None
    high: float | None = None
    low_open: bool = False
    high_open: bool = False
    bare: Any = None
    per: str | None = None
    name: str = ""  # default: the option, and "-{value}" for an option that takes a value

    @property
    def switch(self) -> bool:
        return self.value is not None

    def name_part(self, value: Any) -> str:
        """The part of the variant's name this option gives, e.g. "kmeans-init-20"."""
        template = self.name or (self.option if self.switch else f"{self.option}-{{value}}")
        return template.format(value=f"{value:g}" if isinstance(value, float) else value)


MNAD_VARIANT_FLAGS = (
    VariantFlag("no-separateness", "model.mnad.separateness", "Variant without the separateness loss (eq. 12).", 0),
    VariantFlag("no-compactness", "model.mnad.compactness", "Variant without the compactness loss (eq. 10).", 0),
    VariantFlag(
        "no-test-time-update",
        "eval.mnad.test_time_update",
        "Variant that never updates the items at test time (γ gate off).",
        False,
    ),
    VariantFlag("skip", "model.mnad.skips", "Variant with the U-Net skip connections.", True),
    VariantFlag("no-skip", "model.mnad.skips", "Variant without the U-Net skip connections.", False),
    VariantFlag(
        "uniform-memory",
        "model.mnad.uniform_memory",
        "Variant with the study's uniform-memory supervision (weight 1 when given alone).",
        bare=1.0,
    ),
    VariantFlag(
        "kmeans-init",
        "model.mnad.kmeans_init_steps",
        "Collapse remedy: items start as the k-means centres of the first K steps' queries.",
        kind=int,
        low=1,
    ),
    VariantFlag(
        "reseed-after",
        "model.mnad.reseed_after_steps",
        "Collapse remedy: an item nearest to no query for K training steps is re-seeded from a random query.",
        kind=int,
        low=1,
    ),
    VariantFlag(
        "diversity",
        "model.mnad.diversity",
        "Collapse remedy: weight W of the diversity loss (negative entropy of the mean soft assignment).",
        low=0,
        low_open=True,
    ),
    VariantFlag(
        "normaliser",
        "model.mnad.update_normaliser",
        "Collapse remedy: eq. 5's update normaliser over all queries (reference code) or the assigned ones (paper).",
        kind=tuple(UPDATE_NORMALISERS),
    ),
    VariantFlag(
        "item-init",
        "model.mnad.item_init",
        "Collapse remedy: items start as uniform [0,1) rows (reference) or Gaussian ones, each L2-normalised.",
        kind=tuple(ITEM_INITS),
    ),
    VariantFlag(
        "gamma-quantile",
        "eval.mnad.gamma_quantile",
        "Variant whose test-time update threshold γ is the training frames' regular score at quantile Q.",
        low=0,
        high=1,
    ),
)

MEMAE_VARIANT_FLAGS = (
    VariantFlag(
        "memory-size",
        "model.memae.num_items",
        "MemAE variant's number of memory items (official 2000).",
        kind=int,
        low=1,
    ),
    VariantFlag(
        "shrink-threshold",
        "model.memae.shrink_threshold",
        "MemAE variant with hard-shrinkage threshold K/N (N = the memory size; 0 = off; official 5).",
        low=0,
        per="model.memae.num_items",
        name="shrink-{value}-over-n",
    ),
    VariantFlag("addressing", "model.memae.addressing", "MemAE variant's addressing.", kind=ADDRESSINGS),
    VariantFlag("entropy", "model.memae.entropy", "MemAE variant's entropy-loss weight (official 0.0002).", low=0),
)

BUILTIN_VARIANT_FLAGS = {"mnad": MNAD_VARIANT_FLAGS, "memae": MEMAE_VARIANT_FLAGS}  # the methods of the registry
