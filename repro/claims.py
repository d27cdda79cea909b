"""Claims as data: ablations/claims.toml -> runs over seeds -> paired per-seed differences -> verdicts.

A claim (a `[[claim]]` table) is a statement of the MNAD paper, the reproduction study or the MemAE paper,
tested on one metric over the same seeds in one of two ways:
- two arms, `control` and `treatment` (lists of config overrides, as the rows of a table declaration), and
  `change`, the config keys the claim is about. The treatment must be the control with exactly those keys
  changed (and what the profile derives from them, e.g. a task's loss weights); any other difference is an
  accident and the claim is refused. The effect is treatment minus control, paired by seed.
- one `arm` and a `threshold`: the effect is the arm's value minus the threshold, per seed.

The decision rules are declared with the claims, before the first run (`[plan]`; repro.inference says how):
- seeds in stages: each claim runs the first look's seeds (at least 3), is judged, and runs the next look's
  seeds only while it has not stopped: "boundary" (the sign, or for "equal" the equivalence, is decided at the
  look's O'Brien-Fleming boundary), "futility" (the interval rules out the claimed size), "cap" (the last look),
  or "untested" (fewer finished seeds than the look needs: the failed runs are named, no verdict).
- the verdict: "supported" when the decided sign is the claimed one ("equal": equivalence within ± size),
  "contradicted" when it is the other, "inconclusive" when nothing is decided. The primary claims form the
  family: their stage-wise p-values are adjusted together (Holm or Benjamini-Hochberg) and a primary claim keeps
  its decision only where its adjusted p-value is at or below alpha; the others are exploratory (raw decision).
- the size as its own answer: below / consistent / above the claimed size (or undetermined), from the same
  interval; the minimum detectable effect at the final n; bounded metrics (the oracle's gain) get a sign test.

The arms' overrides are applied after the command line's --set: a claim's arms say what it tests, and a
global setting (e.g. fewer epochs) cannot undo them. `keep_profile` lists keys the --set does not change for
one claim: their values come from the profile, with its method tables (MemAE's own epochs, say), so the claim
runs each method at its profile's schedule under the synthetic profile and the paper one alike.
"""

from __future__ import annotations

import datetime
import hashlib
import json
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

import numpy as np

from .anomaly_types import ANOMALY_TYPES, display
from .atomic import atomic_write
from .config import PROFILES_DIR, ConfigError, RunConfig, identity, load_config, to_dict
from .inference import (
    ADJUSTMENTS,
    Look,
    SeedPlan,
    adjust,
    look,
    minimum_detectable_effect,
    permutation_null,
    reachable_auc,
    size_outcome,
    stagewise_p_value,
    untested,
)
from .record import Selection
from .runs import RunError, RunStore, _git, is_finished, read_record

if TYPE_CHECKING:  # the grid's record type only: reading claims and judging them never imports the training loops
    from .grids import GridRun

SHIPPED = PROFILES_DIR.parent / "claims.toml"  # ablations/claims.toml
DIRECTIONS = ("higher", "lower", "equal")
NOT_TESTABLE = "not testable on this stand-in"  # the verdict of a claim that fails the testability gate
VERDICTS = ("supported", "contradicted", "inconclusive", "untested", NOT_TESTABLE)
FIGURES = ("memory", "roc", "timeline", "probe")  # per-run figures of repro.report.folder a claim may point to
REPLICATION_OFFSET = 1000  # --replicate runs the plan on the seeds offset by this: disjoint from the first set
REGISTRY = "claims-registry.json"  # beside the report: each claim's declaration as first run (deviations)
PLAN_FIELDS = {"looks", "alpha", "adjustment", "primary", "world"}
WORLDS = ("fixed", "per-seed")  # [plan] world: one synthetic world for every seed, or each seed draws its own
ORIGINS = ("source", "project")  # a claim states the source's contrast, or one the project adds (exploratory)
PERMUTATION = "permutation"  # threshold = the metric's empirical null on the same run (inference.permutation_null)
FIELDS = {
    "id",
    "source",
    "quote",
    "size_from",
    "isolated",
    "origin",
    "stand_in",
    "sensitivity",
    "statement",
    "dataset",
    "metric",
    "direction",
    "size",
    "change",
    "control",
    "treatment",
    "arm",
    "threshold",
    "published",
    "note",
    "looks",
    "primary",
    "figure",
    "keep_profile",
}
REQUIRED = ("id", "source", "quote", "statement", "dataset", "metric", "direction")


class ClaimError(ConfigError):
    """A claim declaration that cannot be tested as written; the message names the claim."""


# ------------------------------------------------------------------------------------------- metrics
def _probe_rows(run: Path, replaced: str) -> list[dict]:
    from .probe import probe_run

    return [r for r in probe_run(run) if r["replaced"] == replaced]  # run once, saved as the run's probe.json


def _probe_psnr_change(run: Path) -> float:
    return next(r["psnr_change"] for r in _probe_rows(run, "bottleneck") if r["fill"] == "zeros")


def _probe_skips_psnr_change(run: Path) -> float:
    """The study's probe: bottleneck and skips 2-3 replaced, with every fill it used (zeros, ones, noise); the
    fill that changes the PSNR most (signed), so "unchanged" must hold for each."""
    changes = [r["psnr_change"] for r in _probe_rows(run, "bottleneck+skips")]
    return max(changes, key=abs)


def _default(read: Callable[[Selection], float]) -> Callable[[Path], float]:
    """A metric of the run's default selection (last epoch, the profile's λ)."""
    return lambda run: read(read_record(run).default)


def _memory(diagnostic: str) -> Callable[[Selection], float]:
    def read(default: Selection) -> float:
        if default.memory is None:
            raise KeyError("memory")
        return default.memory.diagnostics[diagnostic]

    return read


def _oracle_gain(run: Path) -> float:
    metrics = read_record(run)
    return 100 * (metrics.oracle.scores.auc - metrics.default.scores.auc)


def _per_type(kind: str) -> Callable[[Path], float]:
    return _default(lambda default: 100 * (default.per_type or {})[kind])


ALL_TYPES = tuple(ANOMALY_TYPES)  # the codes a frame AUC pools


class Metric(NamedTuple):
    help: str
    unit: str
    read: Callable[[Path], float]  # a finished run's folder -> the value
    bounded: bool = False  # >= 0 by construction: judged by a sign test, never a t-interval
    types: tuple[int, ...] = ()  # an AUC's anomaly codes: what its gate and its permutation null work on
    smallest: float = 0.0  # the smallest effect worth testing where a claim states no size (the gate's need)


CLAIM_METRICS: dict[str, Metric] = {
    "auc": Metric(
        "frame AUC (last epoch, the profile's λ)",
        "AUC points",
        _default(lambda default: 100 * default.scores.auc),
        types=ALL_TYPES,
        smallest=0.5,
    ),
    **{
        f"auc_{name}": Metric(f"AUC on the {display(name)} anomalies", "AUC points", _per_type(name), (), (code,), 0.5)
        for code, name in ANOMALY_TYPES.items()
    },
    "perplexity": Metric(
        "perplexity of nearest-item use at test (1 = collapse, M = even)",
        "items",
        _default(_memory("perplexity")),
    ),
    "frame_perplexity": Metric(
        "mean over test frames of the perplexity of that frame's item use (a position code cannot inflate it)",
        "items",
        _default(_memory("frame_perplexity")),
    ),
    "oracle_gain": Metric(
        "oracle AUC (epoch and λ chosen on the test set) minus the honest default",
        "AUC points",
        _oracle_gain,
        bounded=True,
    ),
    "probe_psnr_change": Metric(
        "PSNR change of the output with the bottleneck replaced by zeros (skip probe)", "dB", _probe_psnr_change
    ),
    "probe_skips_psnr_change": Metric(
        "PSNR change of the output with the bottleneck and skips 2-3 replaced, the largest over the fills zeros, "
        "ones and noise (the study's skip probe)",
        "dB",
        _probe_skips_psnr_change,
    ),
}
TEMPORAL_ONLY = ("temporal",)  # types only motion shows: a model that sees one frame cannot move their AUC


def _scored(run: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(scores, anomaly types, video ids), each (f,), of a run's default selection, from its saved signals."""
    from .config import load_config
    from .models.method import signals_from_arrays

    default = read_record(run).default
    arrays = _signals(run)
    signals = signals_from_arrays(load_config(Path(run) / "config.toml").model.method.Signals, arrays)
    return signals.score(arrays["video"], default.lam), arrays["anomaly_type"], arrays["video"]


def _signals(run: Path) -> dict[str, np.ndarray]:
    """The saved per-frame signals of the run's default selection (its last evaluated epoch)."""
    from .runs import load_signals

    return load_signals(run, read_record(run).default.epoch)


def empirical_null(run: Path, metric: str) -> float:
    """The AUC metric's chance level on this run: its default score with the metric's anomaly labels moved at
    random within each video (repro.inference.permutation_null)."""
    scores, types, videos = _scored(run)
    return permutation_null(scores, types, videos, CLAIM_METRICS[metric].types)


def type_shares(run: Path) -> dict[str, float]:
    """Each anomaly type's share of the run's anomalous test frames (from its saved signals)."""
    types = _signals(run)["anomaly_type"]
    anomalous = types[types > 0]
    return {name: float(np.mean(anomalous == code)) for code, name in ANOMALY_TYPES.items() if code in anomalous}


def _pinned(run: Path) -> tuple[str, ...]:
    """The anomaly types whose AUC the run's model cannot move: the temporal ones for a model that sees one frame."""
    from .config import load_config

    cfg = load_config(Path(run) / "config.toml")
    layout = cfg.model.method.layout(cfg.model.settings)
    return TEMPORAL_ONLY if layout.in_frames == 1 and not layout.predict else ()


# ------------------------------------------------------------------------------------------ declaration
@dataclass(frozen=True)
class Claim:
    """One claim: what is stated, where, and how it is tested."""

    id: str
    source: str  # paper / study, table or section
    quote: str  # the source's own words or table row, verbatim, with where they are
    statement: str
    dataset: str  # the real dataset of the published numbers; a synthetic stand-in plays it by default
    stand_in: str
    metric: str  # a key of CLAIM_METRICS
    direction: str  # higher | lower | equal (effect = treatment - control, or arm - threshold)
    arms: dict[str, tuple[str, ...]]  # {"control": ..., "treatment": ...} or {"arm": ...}
    plan: SeedPlan  # its looks (cumulative seeds) and alpha
    size: float | None = None  # the claimed size (higher/lower), or the margin of "equal"
    change: tuple[str, ...] = ()  # the config keys the two arms are meant to differ in
    threshold: float | None = None  # one-arm claims (None with `null`: the run's own empirical null)
    null: bool = False  # one-arm claims against chance: the threshold is the metric's permutation null per run
    size_from: str = ""  # where the source's numbers isolate the contrast that gives `size` (or the margin's reason)
    origin: str = "source"  # "project": a contrast the project adds, not the source's (always exploratory)
    sensitivity: dict[str, tuple[str, ...]] = field(default_factory=dict)  # name -> overrides on both arms: shown
    world_per_seed: bool = False  # each seed draws its own synthetic world (data.synth_seed = seed)
    published: dict[str, Any] = field(default_factory=dict)  # label -> number or text
    note: str = ""
    figure: str | None = None  # one of FIGURES
    keep_profile: tuple[str, ...] = ()  # config keys the command line's --set does not change for this claim
    primary: bool = True  # in the family whose p-values are adjusted together; else exploratory
    adjustment: str = "holm"  # the family's adjustment (a key of repro.inference.ADJUSTMENTS)
    declaration: dict[str, Any] = field(default_factory=dict)  # as declared, with its rules: what is registered


@dataclass(frozen=True)
class Rules:
    """The decision rules of a claims file's [plan]: the default looks, alpha, the family's adjustment."""

    looks: tuple[int, ...]
    alpha: float
    adjustment: str
    primary: bool  # a claim's default role
    world: str = "fixed"  # one of WORLDS


def _rules(raw: dict[str, Any], path: Path) -> Rules:
    if "seeds" in raw:
        raise ClaimError(f"{path}: top-level `seeds` is replaced by the seed plan: [plan] looks = [3, 5]")
    plan = raw.get("plan")
    if not isinstance(plan, dict) or "looks" not in plan:
        raise ClaimError(f'{path} needs a seed plan, e.g. [plan] looks = [3, 5], alpha = 0.05, adjustment = "holm"')
    unknown = sorted(set(plan) - PLAN_FIELDS)
    if unknown:
        allowed = ", ".join(sorted(PLAN_FIELDS))
        raise ClaimError(f"{path}: [plan] has unknown key(s) {', '.join(unknown)}; allowed: {allowed}")
    adjustment = plan.get("adjustment", "holm")
    if adjustment not in ADJUSTMENTS:
        raise ClaimError(f"{path}: [plan] adjustment {adjustment!r} unknown; allowed: {', '.join(ADJUSTMENTS)}")
    world = plan.get("world", "fixed")
    if world not in WORLDS:
        raise ClaimError(f"{path}: [plan] world {world!r} unknown; allowed: {', '.join(WORLDS)}")
    seed_plan = _seed_plan(plan["looks"], plan.get("alpha", 0.05), f"{path}: [plan]")
    return Rules(seed_plan.looks, seed_plan.alpha, adjustment, bool(plan.get("primary", True)), world)


def _seed_plan(looks: Any, alpha: Any, where: str) -> SeedPlan:
    try:
        return SeedPlan(tuple(int(n) for n in looks), float(alpha))
    except (TypeError, ValueError) as error:
        raise ClaimError(f"{where}: {error}") from None


def _claim(raw: dict[str, Any], stand_ins: dict[str, str], rules: Rules, path: Path) -> Claim:
    name = raw.get("id", "<no id>")
    problem = _structure_problem(raw, stand_ins)
    if problem:
        raise ClaimError(f"{path}: claim {name!r}: {problem}")
    plan = _seed_plan(raw.get("looks", rules.looks), rules.alpha, f"{path}: claim {name!r}")
    origin = raw.get("origin", "source")
    primary = bool(raw.get("primary", rules.primary and origin == "source"))
    declared = {"looks": list(plan.looks), "alpha": plan.alpha, "adjustment": rules.adjustment, "primary": primary}
    if rules.world != "fixed":  # registered only where it is not today's default, so older registries still match
        declared["world"] = rules.world
    arms = (
        {"control": tuple(raw["control"]), "treatment": tuple(raw["treatment"])}
        if "arm" not in raw
        else {"arm": tuple(raw["arm"])}
    )
    size = raw.get("size")
    threshold = raw.get("threshold")
    stand_in = raw.get("stand_in", stand_ins[raw["dataset"]])
    return Claim(
        id=raw["id"],
        source=raw["source"],
        quote=raw["quote"],
        statement=raw["statement"],
        dataset=raw["dataset"],
        stand_in=stand_in,
        metric=raw["metric"],
        direction=raw["direction"],
        arms=arms,
        plan=plan,
        size=None if size is None else float(size),
        change=tuple(raw.get("change", ())),
        threshold=None if threshold in (None, PERMUTATION) else float(threshold),
        null=threshold == PERMUTATION,
        size_from=raw.get("size_from", ""),
        origin=origin,
        sensitivity={name: tuple(overrides) for name, overrides in raw.get("sensitivity", {}).items()},
        world_per_seed=rules.world == "per-seed",
        published=dict(raw.get("published", {})),
        note=raw.get("note", ""),
        figure=raw.get("figure"),
        keep_profile=tuple(raw.get("keep_profile", ())),
        primary=primary,
        adjustment=rules.adjustment,
        declaration={**raw, **declared, "stand_in": stand_in},
    )


def _structure_problem(raw: dict[str, Any], stand_ins: dict[str, str]) -> str | None:
    """What is wrong with a claim's fields (before any config is resolved), or None."""
    unknown = sorted(set(raw) - FIELDS)
    missing = [key for key in REQUIRED if key not in raw]
    two_arms, one_arm = "control" in raw or "treatment" in raw, "arm" in raw
    metric = CLAIM_METRICS.get(raw.get("metric"))
    size, threshold = raw.get("size"), raw.get("threshold")
    checks = [
        (unknown, f"unknown field(s) {', '.join(unknown)}; allowed: {', '.join(sorted(FIELDS))}"),
        (
            not str(raw.get("quote", "")).strip(),
            "needs `quote`: the source's own words or table row, verbatim, with where they are",
        ),
        (missing, f"lacks {', '.join(missing)}"),
        (
            raw.get("metric") not in CLAIM_METRICS,
            f"metric {raw.get('metric')!r} unknown; allowed: {', '.join(CLAIM_METRICS)}",
        ),
        (
            raw.get("direction") not in DIRECTIONS,
            f"direction {raw.get('direction')!r} unknown; allowed: {', '.join(DIRECTIONS)}",
        ),
        (raw.get("dataset") not in stand_ins, f"dataset {raw.get('dataset')!r} has no stand-in in [stand_ins]"),
        (two_arms == one_arm, "give either `control` and `treatment` (with `change`) or one `arm` and a `threshold`"),
        (
            two_arms and not ("control" in raw and "treatment" in raw and raw.get("change")),
            "a two-arm claim needs `control`, `treatment` and `change` (the keys the arms are meant to differ in)",
        ),
        (one_arm and "threshold" not in raw, f"a one-arm claim needs a `threshold` (a number or {PERMUTATION!r})"),
        (
            isinstance(threshold, str) and (threshold != PERMUTATION or metric is None or not metric.types),
            f"threshold {threshold!r}: a number, or {PERMUTATION!r} (the empirical null) on an AUC metric",
        ),
        (
            raw.get("origin", "source") not in ORIGINS,
            f"origin {raw.get('origin')!r} unknown; allowed: {', '.join(ORIGINS)}",
        ),
        (
            raw.get("origin") == "project" and raw.get("primary") is True,
            "origin 'project' is a contrast the source does not state: it is exploratory (primary = false)",
        ),
        (
            size is not None and raw.get("isolated") is False,
            f"size {size} on a contrast the source does not isolate (isolated = false): drop the size and say in "
            "`note` what else the source's numbers change",
        ),
        (
            size is not None and not str(raw.get("size_from", "")).strip(),
            f"size {size} needs `size_from`: the source's rows that differ in nothing but the declared change "
            "(for 'equal', where the margin comes from)",
        ),
        ("isolated" in raw and not isinstance(raw["isolated"], bool), "`isolated` is true or false"),
        (
            "sensitivity" in raw
            and not (
                two_arms
                and isinstance(raw["sensitivity"], dict)
                and all(isinstance(v, list) and v for v in raw["sensitivity"].values())
            ),
            "`sensitivity` is a table of name = [overrides] applied to both arms of a two-arm claim",
        ),
        (two_arms and "threshold" in raw, "a two-arm claim takes no `threshold` (its control is the reference)"),
        (
            raw.get("direction") == "equal" and "size" not in raw,
            "direction 'equal' needs `size`, the margin within which the effect counts as no difference",
        ),
        (
            "size" in raw and not (isinstance(raw["size"], (int, float)) and raw["size"] > 0),
            f"size {raw.get('size')!r} must be a magnitude > 0 (the direction gives the sign)",
        ),
        ("primary" in raw and not isinstance(raw["primary"], bool), "`primary` is true or false"),
        (
            one_arm
            and raw.get("metric") in CLAIM_METRICS
            and CLAIM_METRICS[raw["metric"]].bounded
            and raw.get("direction") != "higher",
            f"metric {raw.get('metric')} is >= 0 by construction: one arm can only be tested 'higher' (sign test)",
        ),
        (
            any("=" in key for key in raw.get("keep_profile", ())),
            "`keep_profile` lists config keys (e.g. train.epochs), not overrides",
        ),
        (
            raw.get("figure") not in (None, *FIGURES),
            f"figure {raw.get('figure')!r} unknown; allowed: {', '.join(FIGURES)}",
        ),
    ]
    return next((message for failed, message in checks if failed), None)


def load_claims(path: Path | str) -> list[Claim]:
    """Read a claims declaration; a malformed claim is refused with a message naming it."""
    path = Path(path)
    if not path.is_file():
        raise ClaimError(f"claims declaration {path} not found; the shipped one is ablations/claims.toml")
    try:
        raw = tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as error:
        raise ClaimError(f"{path} is not valid TOML: {error}") from None
    if not raw.get("claim") or "stand_ins" not in raw:
        raise ClaimError(f"{path} needs [stand_ins] and at least one [[claim]]; see ablations/claims.toml")
    rules = _rules(raw, path)
    claims = [_claim(entry, dict(raw["stand_ins"]), rules, path) for entry in raw["claim"]]
    ids = [claim.id for claim in claims]
    repeated = sorted({i for i in ids if ids.count(i) > 1})
    if repeated:
        raise ClaimError(f"{path}: claim id(s) {', '.join(repeated)} declared more than once")
    return claims


# ------------------------------------------------------------------------------------------------ runs
def _flat(data: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested settings -> {dotted key: value}."""
    flat = {}
    for key, value in data.items():
        if isinstance(value, dict):
            flat |= _flat(value, f"{prefix}{key}.")
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def _spell(value: Any) -> str:
    """A value as an override's right-hand side (TOML)."""
    return "none" if value is None else json.dumps(list(value) if isinstance(value, tuple) else value)


def _data_overrides(claim: Claim, data_root: str | None) -> list[str]:
    if data_root is None:
        return ["data.name=synthetic", f"data.preset={claim.stand_in}"]
    return [f"data.name={claim.dataset}", f"data.root={data_root}"]


def _check_arms(claim: Claim, resolve: Callable[..., RunConfig]) -> None:
    """The treatment must be the control with the declared `change` applied, and differ from it. Arms are
    compared by what their runs are (`config.identity`): settings a method never reads do not count."""
    control, treatment = resolve(claim.arms["control"]), resolve(claim.arms["treatment"])
    values = _flat(to_dict(treatment))
    unknown = [key for key in claim.change if key not in values]
    if unknown:
        raise ClaimError(f"claim {claim.id!r}: `change` names unknown key(s) {', '.join(unknown)}")
    changed = tuple(f"{key}={_spell(values[key])}" for key in claim.change)
    expected = resolve((*claim.arms["control"], *changed), unchecked=claim.arms["control"])
    if identity(expected) == identity(control):
        raise ClaimError(
            f"claim {claim.id!r}: its arms do not differ in {', '.join(claim.change)}, the declared change"
        )
    wanted, got = _flat(identity(expected)), _flat(identity(treatment))
    extra = {
        key: (wanted.get(key), got.get(key)) for key in wanted.keys() | got.keys() if wanted.get(key) != got.get(key)
    }
    if extra:
        listed = "; ".join(f"{key}: control {a!r}, treatment {b!r}" for key, (a, b) in sorted(extra.items()))
        raise ClaimError(
            f"claim {claim.id!r}: its arms also differ in {listed}, beyond the declared change "
            f"({', '.join(claim.change)}); make the arms equal there, or add the key to `change` "
            "if that difference is intended"
        )


def _resolver(
    claim: Claim, profile: str | Path | None, data_root: str | None, overrides: tuple[str, ...]
) -> Callable[..., RunConfig]:
    """arm overrides (and a seed) -> the run's config: data, then the global overrides, then the arm's. The arm's
    own overrides must be read by its method; the data and global ones apply where they are read."""

    known = _flat(to_dict(load_config(profile))) if claim.keep_profile else {}
    unknown = [key for key in claim.keep_profile if key not in known]
    if unknown:
        raise ClaimError(f"claim {claim.id!r}: `keep_profile` names unknown key(s) {', '.join(unknown)}")
    kept = [o for o in overrides if o.split("=", 1)[0].strip() not in claim.keep_profile]

    def resolve(arm: tuple[str, ...], seed: int | None = None, unchecked: tuple[str, ...] = ()) -> RunConfig:
        shared = (*_data_overrides(claim, data_root), *kept)
        world = [f"data.synth_seed={seed}"] if claim.world_per_seed and data_root is None and seed is not None else []
        chosen = [*shared, *arm, *world, *([f"seed={seed}"] if seed is not None else [])]
        try:
            return load_config(profile, chosen, unchecked=(*shared, *unchecked))
        except ConfigError as error:
            raise ClaimError(f"claim {claim.id!r}: {error}") from None

    return resolve


def claim_runs(
    claims: list[Claim],
    profile: str | Path | None,
    data_root: str | None = None,
    overrides: tuple[str, ...] = (),
    seeds: Mapping[str, int] | None = None,
    offset: int = 0,
) -> list[GridRun]:
    """Every (claim, arm, seed) run, labelled {"claim": id, "arm": name}; refuses an unknown config key or arms
    that differ beyond their declared change, naming the claim. A claim runs `seeds[id]` seeds (default: its
    first look's), the profile's seed + offset + 0, 1, ..., the same in every arm and every claim."""
    from .grids import GridRun

    if any(override.split("=", 1)[0].strip() == "seed" for override in overrides):
        raise ClaimError(
            "the claims' seeds are their plan's ([plan] looks): --set seed is refused; "
            "--replicate runs the plan on a second, disjoint seed set"
        )
    runs = []
    for claim in claims:
        resolve = _resolver(claim, profile, data_root, overrides)
        if "control" in claim.arms:
            _check_arms(claim, resolve)
        first_seed = resolve(next(iter(claim.arms.values()))).seed + offset
        count = claim.plan.looks[0] if seeds is None else seeds[claim.id]
        for arm, arm_overrides in _all_arms(claim).items():
            for seed in range(first_seed, first_seed + count):
                runs.append(GridRun({"claim": claim.id, "arm": arm}, seed, resolve(arm_overrides, seed)))
    return runs


def _all_arms(claim: Claim) -> dict[str, tuple[str, ...]]:
    """The claim's arms, then the treatment under each declared sensitivity ("treatment@name"): a setting of what
    the treatment turns on (e.g. γ of the test-time update), compared with the claim's own control, shown beside
    the verdict and never deciding it."""
    treatment = claim.arms.get("treatment", ())
    return {
        **claim.arms,
        **{f"treatment@{name}": (*treatment, *changes) for name, changes in claim.sensitivity.items()},
    }


# --------------------------------------------------------------------------------------------- verdicts
@dataclass(frozen=True)
class ClaimResult:
    """A claim at the look where it stopped, with the per-seed values and runs behind it and its verdicts."""

    claim: Claim
    look: Look  # the paired differences at its stopping look (repro.inference.look)
    stage: int  # that look's index in the claim's plan (0-based)
    seeds: tuple[int, ...]  # the paired seeds it used
    values: dict[str, tuple[float, ...]]  # arm -> value per paired seed
    runs: dict[str, tuple[Path, ...]]  # arm -> run folder per paired seed
    missing: tuple[str, ...] = ()  # run folders the look needed that are not done (failed or never run)
    p_value: float = float("nan")  # stage-wise p-value at the stopping look (1 for an untested claim)
    p_adjusted: float = float("nan")  # after the family's adjustment (primary claims; exploratory: the raw one)
    verdict_raw: str = "untested"  # from the look's own boundary, before the family's adjustment
    verdict: str = "untested"  # after it (exploratory claims: the raw verdict)
    nulls: tuple[float, ...] = ()  # per paired seed, the empirical null of a claim against chance (its threshold)
    gate: Gate | None = None  # whether the stand-in can express the claimed effect (None: not yet judged)
    sensitivity: dict[str, Look] = field(default_factory=dict)  # name -> the effect under that sensitivity

    @property
    def testable(self) -> bool:
        return self.gate is None or self.gate.testable

    @property
    def size_outcome(self) -> str | None:
        """below / consistent / above the claimed size, or undetermined; None without a directional size."""
        claim, look = self.claim, self.look
        if claim.size is None or claim.direction == "equal" or look.stop == "untested":
            return None
        return size_outcome(look.low, look.high, claim.direction, claim.size)

    @property
    def detectable(self) -> float:
        """The minimum detectable effect at the final n (80% power at the plan's alpha, the observed SD)."""
        return minimum_detectable_effect(self.look.sd, self.look.n, self.claim.plan.alpha)


def _verdict(claim: Claim, decided: str | None, stop: str) -> str:
    """The verdict word of what a look decided: the claimed sign (or equivalence) holds, or the opposite."""
    if stop == "untested":
        return "untested"
    if decided is None:
        return "inconclusive"
    return "supported" if decided == ("equal" if claim.direction == "equal" else claim.direction) else "contradicted"


def _measure(claim: Claim, run: Path) -> float:
    try:
        return float(CLAIM_METRICS[claim.metric].read(run))
    except KeyError as error:
        raise ClaimError(
            f"claim {claim.id!r}: run {run} records no {claim.metric} (missing {error}); "
            "choose a metric the arms' model has (e.g. perplexity needs a memory)"
        ) from None


def _judge_one(claim: Claim, runs: list[GridRun], store: RunStore) -> ClaimResult:
    """Walk the claim's looks over its planned seeds until one stops it (or the seeds run so far end)."""
    folders: dict[str, dict[int, Path]] = {arm: {} for arm in _all_arms(claim)}
    for run in runs:
        folders[run.labels["arm"]][run.seed] = run.folder_in(store)  # placed runs (a manifest's) are not hashed again
    extra = {arm: folders.pop(arm) for arm in list(folders) if arm not in claim.arms}
    planned = sorted(set.intersection(*(set(by_seed) for by_seed in folders.values())))
    values: dict[str, dict[int, float]] = {arm: {} for arm in claim.arms}  # arm -> seed -> metric
    nulls: dict[int, float] = {}  # seed -> the arm's empirical null (claims against chance)
    state: tuple[Look, int, list[int], list[str]] | None = None
    for stage, needed in enumerate(claim.plan.looks):
        if len(planned) < needed:
            break  # this look's seeds have not been run (yet)
        seeds = planned[:needed]
        missing = [by_seed[s].name for by_seed in folders.values() for s in seeds if not is_finished(by_seed[s])]
        finished = [s for s in seeds if all(is_finished(by_seed[s]) for by_seed in folders.values())]
        for arm, by_seed in folders.items():
            values[arm] |= {s: _measure(claim, by_seed[s]) for s in finished if s not in values[arm]}
        if claim.null:
            nulls |= {s: empirical_null(folders["arm"][s], claim.metric) for s in finished if s not in nulls}
        chance = [nulls[s] for s in finished] if claim.null else []
        differences = _differences(claim, {arm: [values[arm][s] for s in finished] for arm in claim.arms}, chance)
        if missing:
            state = (untested(differences), stage, finished, missing)
            break
        state = (look(differences, claim.direction, claim.size, claim.plan, stage, bounded(claim)), stage, seeds, [])
        if state[0].stop != "continue":
            break
    if state is None:  # not even the first look's seeds are planned
        state = (untested(np.array([])), 0, [], [])
    found, stage, seeds, missing = state
    result = ClaimResult(
        claim,
        found,
        stage,
        tuple(seeds),
        {arm: tuple(values[arm][s] for s in seeds) for arm in claim.arms},
        {arm: tuple(folders[arm][s] for s in seeds) for arm in claim.arms},
        tuple(missing),
        nulls=tuple(nulls[s] for s in seeds if s in nulls),
    )
    if found.stop == "untested":
        return result
    return replace(
        result, gate=testability(result), sensitivity=_sensitivity(claim, folders.get("control", {}), extra, seeds)
    )


def _sensitivity(
    claim: Claim, control: dict[int, Path], folders: dict[str, dict[int, Path]], seeds: list[int]
) -> dict[str, Look]:
    """Each declared sensitivity's effect (its treatment minus the control) on the seeds the verdict used, with its
    interval at the plan's last look level; a sensitivity whose runs are not all done is left out."""
    shown = {}
    for name in claim.sensitivity:
        arms = {"control": control, "treatment": folders[f"treatment@{name}"]}
        if not all(s in by_seed and is_finished(by_seed[s]) for by_seed in arms.values() for s in seeds):
            continue
        values = {arm: [_measure(claim, by_seed[s]) for s in seeds] for arm, by_seed in arms.items()}
        last = len(claim.plan.looks) - 1
        shown[name] = look(_differences(claim, values, []), claim.direction, claim.size, claim.plan, last)
    return shown


@dataclass(frozen=True)
class Gate:
    """Whether a claim's stand-in can express the claimed effect, computed from its runs before the verdict."""

    testable: bool
    room: float  # how far the metric can move from the reference (control mean, or threshold) on the claimed side
    needed: float  # the claimed size, or the metric's smallest effect worth testing
    reason: str  # the numbers, in words


def testability(result: ClaimResult) -> Gate | None:
    """The gate of a claim on an AUC metric (None for others, and for "equal", which needs no room): the room the
    reference (the control's mean, or the threshold) leaves on the claimed side, given the metric's ceiling (100)
    and the anomaly types the claimed model cannot move (one-frame models: temporal), must hold the claimed size
    (or the metric's smallest effect worth testing)."""
    claim = result.claim
    metric = CLAIM_METRICS[claim.metric]
    if not metric.types or claim.direction == "equal" or metric.bounded:
        return None
    reference_arm = "control" if "control" in claim.arms else "arm"
    moved_arm = "treatment" if "treatment" in claim.arms else "arm"
    if "control" in claim.arms:
        reference = float(np.mean(result.values["control"]))
    else:
        reference = float(np.mean(result.nulls)) if claim.null else float(claim.threshold)
    try:
        lows, highs = zip(
            *(_reachable(claim.metric, c, m) for c, m in zip(result.runs[reference_arm], result.runs[moved_arm]))
        )
    except RunError as error:  # a run's signals are gone: the gate cannot be computed, the verdict stands, marked
        return Gate(True, float("nan"), float("nan"), f"not computed ({error})")
    higher = claim.direction == "higher"
    bound = float(np.mean(highs if higher else lows))  # the reachable ceiling (higher) or floor (lower)
    room = bound - reference if higher else reference - bound
    needed = claim.size if claim.size is not None else metric.smallest
    reason = (
        f"reference {reference:.2f}, reachable {'ceiling' if higher else 'floor'} {bound:.2f}: "
        f"room {room:.2f} {'>=' if room >= needed else '<'} needed {needed:g}"
    )
    return Gate(room >= needed, room, needed, reason)


def _reachable(metric: str, control: Path, moved: Path) -> tuple[float, float]:
    """(lowest, highest) value of an AUC metric the moved arm's model can reach from the control run's per-type AUCs:
    the types the moved model cannot see keep the control's AUC."""
    per_type = {kind: 100 * auc for kind, auc in (read_record(control).default.per_type or {}).items()}
    if not per_type:  # a real dataset: no types, only the ceiling
        return 0.0, 100.0
    kinds = [ANOMALY_TYPES[code] for code in CLAIM_METRICS[metric].types]
    shares = type_shares(control) if len(kinds) > 1 else {kinds[0]: 1.0}
    return reachable_auc({kind: shares[kind] for kind in kinds if kind in shares}, per_type, _pinned(moved))


def bounded(claim: Claim) -> bool:
    """A one-arm claim on a metric >= 0 by construction: judged by a sign test, never a t-interval."""
    return CLAIM_METRICS[claim.metric].bounded and "arm" in claim.arms


def _differences(claim: Claim, values: dict[str, list[float]], nulls: list[float]) -> np.ndarray:
    """Per paired seed: treatment - control, or the arm - the threshold (a claim against chance: - its null, the
    same seeds' empirical null)."""
    if "arm" in values:
        reference = nulls if claim.null else claim.threshold
        return np.asarray(values["arm"], dtype=float) - np.asarray(reference, dtype=float)
    return np.asarray(values["treatment"], dtype=float) - np.asarray(values["control"], dtype=float)


def _with_family(results: list[ClaimResult]) -> list[ClaimResult]:
    """Each result with its stage-wise p-value, the family's adjusted one and both verdicts. Untested primary
    claims stay in the family with p = 1, so the family is the one declared, whatever failed."""
    p_values = [
        1.0 if r.look.stop == "untested" else stagewise_p_value(r.claim.plan, r.stage, r.look.p_value) for r in results
    ]
    family = [i for i, r in enumerate(results) if r.claim.primary and r.testable]
    adjusted = list(p_values)
    if family:
        claim = results[family[0]].claim
        _, family_p = adjust([p_values[i] for i in family], claim.adjustment, claim.plan.alpha)
        for i, p in zip(family, family_p):
            adjusted[i] = p
    out = []
    for result, p, p_adjusted in zip(results, p_values, adjusted):
        claim, found = result.claim, result.look
        raw = _verdict(claim, found.decided, found.stop)
        kept = found.decided if p_adjusted <= claim.plan.alpha else None
        verdict = _verdict(claim, kept, found.stop)
        if not result.testable:
            raw = verdict = NOT_TESTABLE
        out.append(replace(result, p_value=p, p_adjusted=p_adjusted, verdict_raw=raw, verdict=verdict))
    return out


def judge(claims: list[Claim], runs: list[GridRun], store: RunStore) -> list[ClaimResult]:
    """Read each claim's metric from its runs, stop it at the first look of its plan that stops it, and give its
    verdicts before and after the family's adjustment (never trains)."""
    return _with_family(
        [_judge_one(claim, [r for r in runs if r.labels["claim"] == claim.id], store) for claim in claims]
    )


def run_plan(
    claims: list[Claim],
    expand: Callable[[list[Claim], dict[str, int]], list[GridRun]],
    execute: Callable[[list[GridRun]], tuple[list[GridRun], dict[str, str]]],
    store: RunStore,
) -> tuple[list[ClaimResult], list[GridRun], dict[str, str]]:
    """Run the seed plan in stages: the first look's seeds of every claim, judge, then the next look's seeds of
    the claims that have not stopped, up to their cap. `expand(claims, {id: seeds})` gives the runs,
    `execute(runs)` runs what the store lacks and returns (the placed runs, {run folder: error}).
    Returns the final results, every run used and the failures."""
    used: dict[tuple[str, str, int], GridRun] = {}
    failures: dict[str, str] = {}
    seeds = {claim.id: claim.plan.looks[0] for claim in claims}
    pending = list(claims)
    while pending:
        placed_runs, failed = execute(expand(pending, seeds))
        failures |= failed
        used |= {(r.labels["claim"], r.labels["arm"], r.seed): r for r in placed_runs}
        results = judge(claims, list(used.values()), store)
        going = [r for r in results if r.look.stop == "continue" and r.testable]
        pending = [r.claim for r in going]
        seeds = {r.claim.id: r.claim.plan.looks[r.stage + 1] for r in going}
    return results, list(used.values()), failures


# --------------------------------------------------------------------------------- pre-registration
@dataclass(frozen=True)
class Deviation:
    """A claim whose declaration changed after runs for it existed."""

    id: str
    registered: dict[str, Any]  # the declaration as first run, with "date" and "commit" of that first run
    declared: dict[str, Any]  # the declaration now
    changed_by: str  # the commit that changed the claims file since, "uncommitted", or "unknown"


@dataclass(frozen=True)
class Registration:
    """What the report records of its claims file and its rules, and the deviations from the registry."""

    file: str
    sha256: str
    commit: str | None  # the last commit of the file, where git tracks it
    date: str | None  # that commit's date
    rules: dict[str, Any]  # alpha, adjustment, the default looks
    deviations: tuple[Deviation, ...] = ()


def _canonical(declaration: dict[str, Any]) -> str:
    return json.dumps(declaration, sort_keys=True, ensure_ascii=False)


def _file_commit(path: Path) -> tuple[str | None, str | None, bool]:
    """(last commit touching the file, its date, whether the working copy differs from it) where git tracks it."""
    cwd = path.parent
    if _git("ls-files", "--error-unmatch", path.name, cwd=cwd) is None:
        return None, None, False
    logged = _git("log", "-1", "--format=%H %cI", "--", path.name, cwd=cwd) or ""
    commit, _, date = logged.partition(" ")
    dirty = bool(_git("status", "--porcelain", "--", path.name, cwd=cwd))
    return commit or None, date or None, dirty


def register(claims: list[Claim], claims_file: Path, out: Path) -> Registration:
    """Record each claim's declaration at its first run in out/claims-registry.json (kept thereafter) and list
    the claims whose declaration differs from the one registered: the deviations."""
    claims_file = Path(claims_file)
    commit, date, dirty = _file_commit(claims_file.resolve())
    path = Path(out) / REGISTRY
    registry = json.loads(path.read_text()) if path.is_file() else {}
    now = datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")
    deviations = []
    for claim in claims:
        entry = registry.get(claim.id)
        if entry is None:
            registry[claim.id] = {"declaration": claim.declaration, "date": now, "commit": None if dirty else commit}
        elif _canonical(entry["declaration"]) != _canonical(claim.declaration):
            changed_by = "uncommitted" if dirty else commit if commit and commit != entry["commit"] else "unknown"
            registered = {**entry["declaration"], "date": entry["date"], "commit": entry["commit"]}
            deviations.append(Deviation(claim.id, registered, claim.declaration, changed_by))
    atomic_write(path, json.dumps(registry, indent=2, sort_keys=True, ensure_ascii=False) + "\n")
    first = claims[0]
    rules = {"alpha": first.plan.alpha, "adjustment": first.adjustment, "looks": list(first.plan.looks)}
    sha = hashlib.sha256(claims_file.read_bytes()).hexdigest()
    return Registration(str(claims_file), sha, commit, date, rules, tuple(deviations))
