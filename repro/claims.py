"""Claims as data: ablations/claims.toml -> runs over seeds -> paired per-seed differences -> verdicts.

A claim (a `[[claim]]` table) is a statement of the MNAD paper, the reproduction study or the MemAE paper,
tested on one metric over the same seeds in one of two ways:
- two arms, `control` and `treatment` (lists of config overrides, as the rows of a table declaration), and
  `change`, the config keys the claim is about. The treatment must be the control with exactly those keys
  changed (and what the profile derives from them, e.g. a task's loss weights); any other difference is an
  accident and the claim is refused. The effect is treatment minus control, paired by seed.
- one `arm` and a `threshold`: the effect is the arm's value minus the threshold, per seed.

The verdict comes from the 95% t-interval of the mean effect (repro.stats.seed_difference_interval) and the
claimed `direction` ("higher", "lower" or "equal") and `size`:
- higher (lower mirrors it): "supported" when the interval lies above 0 and reaches the size (the data do not
  rule out an effect as large as claimed); "partly supported" when it lies above 0 but wholly below the size
  (the direction holds, the size does not); "contradicted" when it lies below 0; "inconclusive" when it spans 0.
- equal ("makes no difference", within ± size): "supported" when the interval lies inside (-size, size),
  "contradicted" when it lies wholly outside, "inconclusive" otherwise.
- "untested" when fewer than two seeds finished in both arms.

The arms' overrides are applied after the command line's --set: a claim's arms say what it tests, and a
global setting (e.g. fewer epochs) cannot undo them. `keep_profile` lists keys the --set does not change for
one claim: their values come from the profile, with its method tables (MemAE's own epochs, say), so the claim
runs each method at its profile's schedule under the synthetic profile and the paper one alike.
"""

from __future__ import annotations

import json
import tomllib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

import numpy as np

from .config import PROFILES_DIR, ConfigError, RunConfig, identity, load_config, to_dict
from .record import Selection
from .runs import RunStore, is_finished, read_record
from .stats import seed_difference_interval

if TYPE_CHECKING:  # the grid's record type only: reading claims and judging them never imports the training loops
    from .grids import GridRun

SHIPPED = PROFILES_DIR.parent / "claims.toml"  # ablations/claims.toml
DIRECTIONS = ("higher", "lower", "equal")
VERDICTS = ("supported", "partly supported", "contradicted", "inconclusive", "untested")
FIGURES = ("memory", "roc", "timeline", "probe")  # per-run figures of repro.report.folder a claim may point to
MIN_SEEDS = 3
FIELDS = {
    "id",
    "source",
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
    "seeds",
    "figure",
    "keep_profile",
}
REQUIRED = ("id", "source", "statement", "dataset", "metric", "direction")


class ClaimError(ConfigError):
    """A claim declaration that cannot be tested as written; the message names the claim."""


# ------------------------------------------------------------------------------------------- metrics
def _probe_psnr_change(run: Path) -> float:
    from .probe import probe_run

    rows = probe_run(run)  # run once, saved as the run's probe.json, read from it afterwards
    return next(r["psnr_change"] for r in rows if r["replaced"] == "bottleneck" and r["fill"] == "zeros")


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


class Metric(NamedTuple):
    help: str
    unit: str
    read: Callable[[Path], float]  # a finished run's folder -> the value


CLAIM_METRICS: dict[str, Metric] = {
    "auc": Metric(
        "frame AUC (last epoch, the profile's λ)", "AUC points", _default(lambda default: 100 * default.scores.auc)
    ),
    "auc_spatial": Metric("AUC on the spatial anomalies", "AUC points", _per_type("spatial")),
    "auc_temporal": Metric("AUC on the temporal anomalies", "AUC points", _per_type("temporal")),
    "auc_spatio_temporal": Metric("AUC on the spatio-temporal anomalies", "AUC points", _per_type("spatio_temporal")),
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
    ),
    "probe_psnr_change": Metric(
        "PSNR change of the output with the bottleneck replaced by zeros (skip probe)", "dB", _probe_psnr_change
    ),
}


# ------------------------------------------------------------------------------------------ declaration
@dataclass(frozen=True)
class Claim:
    """One claim: what is stated, where, and how it is tested."""

    id: str
    source: str  # paper / study, table or section
    statement: str
    dataset: str  # the real dataset of the published numbers; a synthetic stand-in plays it by default
    stand_in: str
    metric: str  # a key of CLAIM_METRICS
    direction: str  # higher | lower | equal (effect = treatment - control, or arm - threshold)
    arms: dict[str, tuple[str, ...]]  # {"control": ..., "treatment": ...} or {"arm": ...}
    seeds: int
    size: float | None = None  # the claimed size (higher/lower), or the margin of "equal"
    change: tuple[str, ...] = ()  # the config keys the two arms are meant to differ in
    threshold: float | None = None  # one-arm claims
    published: dict[str, Any] = field(default_factory=dict)  # label -> number or text
    note: str = ""
    figure: str | None = None  # one of FIGURES
    keep_profile: tuple[str, ...] = ()  # config keys the command line's --set does not change for this claim


def _claim(raw: dict[str, Any], stand_ins: dict[str, str], seeds: int, path: Path) -> Claim:
    name = raw.get("id", "<no id>")
    problem = _structure_problem(raw, stand_ins)
    if problem is None and int(raw.get("seeds", seeds)) < MIN_SEEDS:
        problem = f"seeds must be at least {MIN_SEEDS} (paired differences need them for a usable interval)"
    if problem:
        raise ClaimError(f"{path}: claim {name!r}: {problem}")
    arms = (
        {"control": tuple(raw["control"]), "treatment": tuple(raw["treatment"])}
        if "arm" not in raw
        else {"arm": tuple(raw["arm"])}
    )
    size = raw.get("size")
    threshold = raw.get("threshold")
    return Claim(
        id=raw["id"],
        source=raw["source"],
        statement=raw["statement"],
        dataset=raw["dataset"],
        stand_in=stand_ins[raw["dataset"]],
        metric=raw["metric"],
        direction=raw["direction"],
        arms=arms,
        seeds=int(raw.get("seeds", seeds)),
        size=None if size is None else float(size),
        change=tuple(raw.get("change", ())),
        threshold=None if threshold is None else float(threshold),
        published=dict(raw.get("published", {})),
        note=raw.get("note", ""),
        figure=raw.get("figure"),
        keep_profile=tuple(raw.get("keep_profile", ())),
    )


def _structure_problem(raw: dict[str, Any], stand_ins: dict[str, str]) -> str | None:
    """What is wrong with a claim's fields (before any config is resolved), or None."""
    unknown = sorted(set(raw) - FIELDS)
    missing = [key for key in REQUIRED if key not in raw]
    two_arms, one_arm = "control" in raw or "treatment" in raw, "arm" in raw
    checks = [
        (unknown, f"unknown field(s) {', '.join(unknown)}; allowed: {', '.join(sorted(FIELDS))}"),
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
        (one_arm and "threshold" not in raw, "a one-arm claim needs a `threshold`"),
        (two_arms and "threshold" in raw, "a two-arm claim takes no `threshold` (its control is the reference)"),
        (
            raw.get("direction") == "equal" and not raw.get("size"),
            "direction 'equal' needs `size`, the margin within which the effect counts as no difference",
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
    claims = [_claim(entry, dict(raw["stand_ins"]), int(raw.get("seeds", MIN_SEEDS)), path) for entry in raw["claim"]]
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
        chosen = [*shared, *arm, *([f"seed={seed}"] if seed is not None else [])]
        try:
            return load_config(profile, chosen, unchecked=(*shared, *unchecked))
        except ConfigError as error:
            raise ClaimError(f"claim {claim.id!r}: {error}") from None

    return resolve


def claim_runs(
    claims: list[Claim], profile: str | Path | None, data_root: str | None = None, overrides: tuple[str, ...] = ()
) -> list[GridRun]:
    """Every (claim, arm, seed) run, labelled {"claim": id, "arm": name}; refuses an unknown config key or arms
    that differ beyond their declared change, naming the claim. Seeds are the profile's seed + 0, 1, ..."""
    from .grids import GridRun

    runs = []
    for claim in claims:
        resolve = _resolver(claim, profile, data_root, overrides)
        if "control" in claim.arms:
            _check_arms(claim, resolve)
        first_seed = resolve(next(iter(claim.arms.values()))).seed
        for arm, arm_overrides in claim.arms.items():
            for seed in range(first_seed, first_seed + claim.seeds):
                runs.append(GridRun({"claim": claim.id, "arm": arm}, seed, resolve(arm_overrides, seed)))
    return runs


# --------------------------------------------------------------------------------------------- verdicts
class Verdict(NamedTuple):
    verdict: str  # one of VERDICTS
    effect: float  # mean over seeds of treatment - control (or arm - threshold)
    low: float  # 95% t-interval of the effect
    high: float
    n: int  # paired seeds


def decide(
    control: np.ndarray, treatment: np.ndarray, direction: str, size: float | None = None, confidence: float = 0.95
) -> Verdict:
    """The verdict on paired per-seed values (control[i] and treatment[i] share a seed); see the module doc."""
    if direction == "equal" and size is None:
        raise ValueError("a claim of no difference (direction 'equal') needs its margin, size")
    control, treatment = np.asarray(control, dtype=float), np.asarray(treatment, dtype=float)
    n = control.size
    if n < 2:
        effect = float(np.mean(treatment - control)) if n else float("nan")
        return Verdict("untested", effect, float("nan"), float("nan"), n)
    effect, low, high = seed_difference_interval(control, treatment, confidence)
    if direction == "equal":
        if -size < low and high < size:
            return Verdict("supported", effect, low, high, n)
        if low >= size or high <= -size:
            return Verdict("contradicted", effect, low, high, n)
        return Verdict("inconclusive", effect, low, high, n)
    toward, away = (low, high) if direction == "higher" else (-high, -low)  # the interval, claimed side positive
    if toward > 0:
        return Verdict("supported" if size is None or away >= size else "partly supported", effect, low, high, n)
    if away < 0:
        return Verdict("contradicted", effect, low, high, n)
    return Verdict("inconclusive", effect, low, high, n)


def size_ruled_out(verdict: Verdict, direction: str, size: float | None) -> bool:
    """Whether the interval excludes an effect as large as the claimed size (a directional claim with a size):
    what an "inconclusive" or "partly supported" verdict still says against the source's number."""
    if size is None or direction == "equal" or verdict.n < 2:
        return False
    return verdict.high < size if direction == "higher" else verdict.low > -size


@dataclass(frozen=True)
class ClaimResult:
    """A claim's verdict with the per-seed values and the runs behind it."""

    claim: Claim
    verdict: Verdict
    seeds: tuple[int, ...]  # the paired seeds
    values: dict[str, tuple[float, ...]]  # arm -> value per paired seed
    runs: dict[str, tuple[Path, ...]]  # arm -> run folder per paired seed
    missing: tuple[str, ...] = ()  # run folders that are not done (failed or never run)


def _measure(claim: Claim, run: Path) -> float:
    try:
        return float(CLAIM_METRICS[claim.metric].read(run))
    except KeyError as error:
        raise ClaimError(
            f"claim {claim.id!r}: run {run} records no {claim.metric} (missing {error}); "
            "choose a metric the arms' model has (e.g. perplexity needs a memory)"
        ) from None


def judge(claims: list[Claim], runs: list[GridRun], store: RunStore) -> list[ClaimResult]:
    """Read each claim's metric from its finished runs and give its verdict (never trains)."""
    results = []
    for claim in claims:
        folders: dict[str, dict[int, Path]] = {arm: {} for arm in claim.arms}
        missing = []
        for run in (r for r in runs if r.labels["claim"] == claim.id):
            folder = run.folder_in(store)  # placed runs (a manifest's) are not hashed again
            if is_finished(folder):
                folders[run.labels["arm"]][run.seed] = folder
            else:
                missing.append(folder.name)
        seeds = tuple(sorted(set.intersection(*(set(by_seed) for by_seed in folders.values()))))
        values = {arm: tuple(_measure(claim, by_seed[s]) for s in seeds) for arm, by_seed in folders.items()}
        if "arm" in values:
            control, treatment = np.full(len(seeds), claim.threshold), np.asarray(values["arm"])
        else:
            control, treatment = np.asarray(values["control"]), np.asarray(values["treatment"])
        results.append(
            ClaimResult(
                claim,
                decide(control, treatment, claim.direction, claim.size),
                seeds,
                values,
                {arm: tuple(by_seed[s] for s in seeds) for arm, by_seed in folders.items()},
                tuple(missing),
            )
        )
    return results
