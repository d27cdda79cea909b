"""The statistics of a verdict, per claim and for the report as a family (the review's sections 2 and 3).

Per claim, over paired seeds (d_i = treatment_i - control_i, or arm_i - threshold):
- A seed plan (`SeedPlan`): looks after n_1 < n_2 < ... < n_K seeds (n_1 >= 3), fixed before the first run.
  Its boundaries spend the two-sided error rate alpha over the looks with the Lan-DeMets O'Brien-Fleming
  function alpha(t) = 2 - 2 Phi(z_{1-alpha/2} / sqrt(t)), t = n_k / n_K; `boundaries` gives each look's nominal
  two-sided p-value. At a look, the paired t-test's p-value at or below the boundary decides the sign; an
  interval (at the look's nominal level) wholly on the far side of the claimed size stops for futility.
- The claim's p-value (`stagewise_p_value`): 1 - P(no crossing before the stopping look k and |Z_k| < z_k)
  under no effect (stage-wise ordering), valid whatever the look it stopped at.
- The size as its own answer (`size_outcome`): below / consistent / above the claimed size from the final
  interval; "consistent" also needs the interval to exclude 0 on the claimed side (narrow enough to tell the
  size from no effect), otherwise "undetermined".
- The minimum detectable effect (`minimum_detectable_effect`): the smallest |effect| a two-sided paired t-test
  at the final n finds with 80% power, at the observed SD.
- Bounded metrics (>= 0 by construction, e.g. the oracle's gain): a one-sided sign test, never a t-interval.

For the report: the claims' p-values adjusted with Holm's step-down method (family-wise error) or
Benjamini-Hochberg (false discovery rate), both from statsmodels' `multipletests`.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache

import numpy as np
from scipy import optimize
from scipy import stats as scipy_stats
from statsmodels.stats.multitest import multipletests
from statsmodels.stats.power import TTestPower

MIN_SEEDS = 3  # the first look: fewer paired seeds give no verdict ("untested")
ADJUSTMENTS = {"holm": "holm", "bh": "fdr_bh"}  # name in claims.toml -> statsmodels' method
STOPS = ("boundary", "futility", "cap", "continue", "untested")
SIZE_OUTCOMES = ("below", "consistent", "above", "undetermined")


# ------------------------------------------------------------------------------------------ seed plans
@dataclass(frozen=True)
class SeedPlan:
    """Cumulative seeds at each look, e.g. (3, 5, 8), and the two-sided error rate spent over them."""

    looks: tuple[int, ...]
    alpha: float = 0.05

    def __post_init__(self) -> None:
        looks = self.looks
        if not looks or looks[0] < MIN_SEEDS or any(b <= a for a, b in zip(looks, looks[1:])):
            raise ValueError(f"a seed plan's looks must rise from at least {MIN_SEEDS} seeds, got {list(looks)}")
        if not 0 < self.alpha < 1:
            raise ValueError(f"a seed plan's alpha must lie in (0, 1), got {self.alpha}")

    @property
    def cap(self) -> int:
        return self.looks[-1]

    def fractions(self) -> tuple[float, ...]:
        return tuple(n / self.cap for n in self.looks)

    def critical_z(self) -> tuple[float, ...]:
        return _critical_z(self.fractions(), self.alpha)

    def boundaries(self) -> tuple[float, ...]:
        """Each look's nominal two-sided p-value: at or below it, the sign is decided at that look."""
        return tuple(float(2 * scipy_stats.norm.sf(c)) for c in self.critical_z())


def obrien_fleming_spent(t: float, alpha: float) -> float:
    """Lan-DeMets' O'Brien-Fleming-type spending: the two-sided error spent by information fraction t."""
    return float(2 - 2 * scipy_stats.norm.cdf(scipy_stats.norm.ppf(1 - alpha / 2) / np.sqrt(t)))


def _covariance(fractions: tuple[float, ...]) -> np.ndarray:
    """(k, k) correlation of the looks' z-statistics: sqrt(t_i / t_j) for i <= j (Brownian motion)."""
    t = np.asarray(fractions)
    return np.sqrt(np.minimum.outer(t, t) / np.maximum.outer(t, t))


def _inside(bounds: tuple[float, ...], fractions: tuple[float, ...]) -> float:
    """P(|Z_j| < bounds_j for every look j) under no effect."""
    if len(bounds) == 1:
        return float(1 - 2 * scipy_stats.norm.sf(bounds[0]))
    upper = np.asarray(bounds)
    mvn = scipy_stats.multivariate_normal(mean=np.zeros(len(bounds)), cov=_covariance(fractions), seed=0)
    return float(mvn.cdf(upper, lower_limit=-upper))


@cache
def _critical_z(fractions: tuple[float, ...], alpha: float) -> tuple[float, ...]:
    """z_k with P(|Z_j| < z_j, j <= k) = 1 - alpha(t_k): each look spends what the function allows by then."""
    bounds: list[float] = []
    for k, t in enumerate(fractions):
        kept, looks, earlier = 1 - obrien_fleming_spent(t, alpha), fractions[: k + 1], tuple(bounds)
        bounds.append(
            optimize.brentq(lambda c, e=earlier, f=looks, p=kept: _inside((*e, c), f) - p, 0.1, 40.0, xtol=1e-8)
        )
    return tuple(bounds)


def stagewise_p_value(plan: SeedPlan, look: int, p_two_sided: float) -> float:
    """The p-value of a claim that stopped at `look` (0-based) with that look's two-sided t-test p-value:
    the chance, under no effect, of crossing earlier or of a statistic at least as extreme at this look."""
    z = float(scipy_stats.norm.isf(p_two_sided / 2))
    earlier = plan.critical_z()[:look]
    return min(1.0, max(0.0, 1 - _inside((*earlier, z), plan.fractions()[: look + 1])))


# ---------------------------------------------------------------------------------------- one look
@dataclass(frozen=True)
class Look:
    """What a claim's seeds say at one look of its plan."""

    n: int
    effect: float  # mean paired difference
    sd: float  # its sample SD
    p_value: float  # two-sided test of no effect (equal claims: of being outside the margin, TOST)
    low: float  # interval at the look's nominal level
    high: float
    stop: str  # one of STOPS
    decided: str | None  # "higher" / "lower" (sign) or "equal" / "different" (equivalence) once decided


def look(
    differences: np.ndarray, direction: str, size: float | None, plan: SeedPlan, index: int, bounded: bool = False
) -> Look:
    """The state of a claim at look `index` (0-based) of `plan`, from its paired differences so far."""
    d = np.asarray(differences, dtype=float).ravel()
    n = d.size
    if n < MIN_SEEDS:
        return untested(d)
    threshold = plan.boundaries()[index]
    effect, sd = float(d.mean()), float(d.std(ddof=1))
    half = scipy_stats.t.isf(threshold / 2, n - 1) * sd / np.sqrt(n)
    low, high = effect - half, effect + half
    if bounded:
        p = sign_test(d)
        decided = "higher" if p <= threshold else None
    elif direction == "equal":
        p, decided = _equivalence(d, size)
        decided = decided if p <= threshold else None
    else:
        p = float(scipy_stats.ttest_1samp(d, 0.0).pvalue) if sd > 0 else (0.0 if effect else 1.0)
        decided = ("higher" if effect > 0 else "lower") if p <= threshold else None
    last = index == len(plan.looks) - 1
    futile = direction != "equal" and size is not None and _size_excluded(low, high, direction, size)
    stop = "boundary" if decided else "futility" if futile else "cap" if last else "continue"
    return Look(n, effect, sd, p, low, high, stop, decided)


def untested(differences: np.ndarray) -> Look:
    """The state of a claim that has fewer finished seeds than its look needs: its mean so far, no verdict."""
    d = np.asarray(differences, dtype=float).ravel()
    nan = float("nan")
    return Look(d.size, float(d.mean()) if d.size else nan, nan, nan, nan, nan, "untested", None)


def _equivalence(d: np.ndarray, margin: float) -> tuple[float, str]:
    """(two-sided-scale p-value, what it decides) of the better-supported of equivalence within ±margin (TOST:
    twice the larger one-sided p) and non-equivalence (twice the smaller p of lying beyond a margin)."""
    above = scipy_stats.ttest_1samp(d, -margin, alternative="greater").pvalue  # effect > -margin
    below = scipy_stats.ttest_1samp(d, margin, alternative="less").pvalue  # effect < margin
    outside = min(
        scipy_stats.ttest_1samp(d, margin, alternative="greater").pvalue,
        scipy_stats.ttest_1samp(d, -margin, alternative="less").pvalue,
    )
    equivalent = min(1.0, 2 * max(above, below))
    different = min(1.0, 2 * outside)
    return (equivalent, "equal") if equivalent <= different else (different, "different")


def _size_excluded(low: float, high: float, direction: str, size: float) -> bool:
    return high < size if direction == "higher" else low > -size


def sign_test(differences: np.ndarray) -> float:
    """One-sided sign test that positive differences are more likely than negative ones (zeros dropped)."""
    d = np.asarray(differences, dtype=float)
    nonzero = d[d != 0]
    if nonzero.size == 0:
        return 1.0
    return float(scipy_stats.binomtest(int((nonzero > 0).sum()), nonzero.size, 0.5, alternative="greater").pvalue)


# ------------------------------------------------------------------------------------- the size, power
def size_outcome(low: float, high: float, direction: str, size: float) -> str:
    """ "below", "above" or "consistent" with the claimed size (a magnitude > 0, on the claimed side), or
    "undetermined" when the interval holds both the size and 0 (too wide to tell them apart)."""
    if size <= 0:
        raise ValueError(f"a claimed size is a magnitude > 0, got {size}")
    toward, away = (low, high) if direction == "higher" else (-high, -low)  # the claimed side positive
    if away < size:
        return "below"
    if toward > size:
        return "above"
    return "consistent" if toward > 0 else "undetermined"


def minimum_detectable_effect(sd: float, n: int, alpha: float = 0.05, power: float = 0.8) -> float:
    """Smallest |mean difference| that a two-sided paired t-test at `alpha` detects with `power` at n seeds."""
    if n < 2 or not np.isfinite(sd):
        return float("nan")
    return float(TTestPower().solve_power(nobs=n, alpha=alpha, power=power, alternative="two-sided") * sd)


# ----------------------------------------------------------------------------------------- the family
def adjust(p_values: list[float], method: str = "holm", alpha: float = 0.05) -> tuple[list[bool], list[float]]:
    """(decided at the family's level, adjusted p-values) of the family's claims, in their order."""
    if method not in ADJUSTMENTS:
        raise ValueError(f"unknown adjustment {method!r}; allowed: {', '.join(ADJUSTMENTS)}")
    if not p_values:
        return [], []
    reject, adjusted, _, _ = multipletests(np.asarray(p_values, dtype=float), alpha=alpha, method=ADJUSTMENTS[method])
    return [bool(r) for r in reject], [float(p) for p in adjusted]


# ------------------------------------------------------------------------------ chance, from the data
def permutation_null(
    scores: np.ndarray, types: np.ndarray, videos: np.ndarray, tested: tuple[int, ...], draws: int = 200, seed: int = 0
) -> float:
    """The AUC (points) a score earns on the `tested` anomaly codes when it carries no information about them: the
    mean over `draws` of the AUC with those labels moved within each video (a random circular shift over the frames
    that are normal or tested; other anomalies stay where they are, so a per-video normalisation they dominate still
    shapes the null). scores, types, videos: (f,) per frame; types 0 = normal."""
    from sklearn.metrics import roc_auc_score

    types, videos, scores = np.asarray(types), np.asarray(videos), np.asarray(scores, dtype=float)
    eligible = (types == 0) | np.isin(types, tested)  # (f,) the frames the tested labels may move among
    rng = np.random.default_rng(seed)
    groups = [np.flatnonzero(eligible & (videos == v)) for v in np.unique(videos)]
    labels = np.isin(types, tested)
    aucs = []
    for _ in range(draws):
        moved = labels.copy()
        for frames in groups:
            moved[frames] = np.roll(labels[frames], int(rng.integers(frames.size)))
        aucs.append(roc_auc_score(moved[eligible], scores[eligible]))
    return float(100 * np.mean(aucs))


def reachable_auc(shares: dict[str, float], per_type: dict[str, float], pinned: tuple[str, ...]) -> tuple[float, float]:
    """(lowest, highest) frame AUC in points a model can reach when the types in `pinned` keep their AUC (`per_type`,
    points) and the others may go anywhere in [0, 100]: the micro frame AUC is the share-weighted mean of the
    per-type AUCs against the same normal frames (shares: each type's share of the anomalous frames)."""
    fixed = sum(shares[kind] * per_type[kind] for kind in shares if kind in pinned)
    free = sum(shares[kind] for kind in shares if kind not in pinned)
    return float(fixed), float(fixed + 100 * free)
