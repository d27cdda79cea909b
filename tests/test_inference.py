"""The statistics of a verdict on hand-made per-seed numbers: the spending boundaries hold their error rate, a
look stops at the boundary, for futility or at the cap, the size has its own outcome, and the family's
adjustment is statsmodels' own."""

import numpy as np
import pytest
from scipy import stats as scipy_stats
from statsmodels.stats.multitest import multipletests

from repro.inference import (
    SeedPlan,
    adjust,
    look,
    minimum_detectable_effect,
    obrien_fleming_spent,
    sign_test,
    size_outcome,
    stagewise_p_value,
)


def test_one_look_is_the_plain_two_sided_test():
    plan = SeedPlan((5,))
    assert plan.boundaries() == pytest.approx((0.05,))
    d = np.array([1.0, 1.4, 0.6, 1.1, 0.9])
    p = scipy_stats.ttest_1samp(d, 0).pvalue
    assert stagewise_p_value(plan, 0, p) == pytest.approx(p, rel=1e-6)


def test_the_first_boundary_is_the_obrien_fleming_spending_in_closed_form():
    plan = SeedPlan((3, 6, 9))
    assert plan.critical_z()[0] == pytest.approx(scipy_stats.norm.ppf(0.975) * np.sqrt(3), rel=1e-6)
    assert plan.boundaries()[0] == pytest.approx(obrien_fleming_spent(1 / 3, 0.05), rel=1e-6)
    assert plan.boundaries()[0] < plan.boundaries()[1] < plan.boundaries()[2] < 0.05


@pytest.mark.parametrize("looks", [(3, 6), (3, 6, 9), (3, 5, 8, 12)])
def test_the_boundaries_spend_alpha_over_the_looks_monte_carlo(looks):
    plan = SeedPlan(looks)
    t, c = np.array(plan.fractions()), np.array(plan.critical_z())
    rng = np.random.default_rng(1)
    steps = rng.standard_normal((200_000, len(t))) * np.sqrt(np.diff(np.r_[0, t]))
    z = np.cumsum(steps, axis=1) / np.sqrt(t)  # the looks' z-statistics under no effect
    crossed = (np.abs(z) >= c).any(axis=1)
    assert crossed.mean() == pytest.approx(0.05, abs=0.003)


def test_a_clear_effect_crosses_at_the_second_look_and_stops_there():
    plan = SeedPlan((3, 6, 9))
    d = np.array([0.5, 2.5, 1.0, 1.8, 1.2, 1.6])  # noisy at 3 seeds, clear at 6
    first, second = look(d[:3], "higher", None, plan, 0), look(d, "higher", None, plan, 1)
    assert first.stop == "continue" and first.decided is None
    assert second.stop == "boundary" and second.decided == "higher" and second.p_value <= plan.boundaries()[1]
    assert stagewise_p_value(plan, 1, second.p_value) < 0.05


def test_an_unchanged_claim_at_the_cap_stays_inconclusive():
    plan = SeedPlan((3, 6))
    d = np.array([0.3, -0.4, 0.1, -0.2, 0.5, -0.3])
    final = look(d, "higher", None, plan, 1)
    assert final.stop == "cap" and final.decided is None
    assert stagewise_p_value(plan, 1, final.p_value) > 0.05


def test_futility_stops_once_the_claimed_size_is_ruled_out():
    plan = SeedPlan((3, 6, 9))
    d = np.array([0.10, 0.15, 0.12])  # precise and far below a claimed +2.7, not yet decided in sign at look 1
    state = look(d, "higher", 2.7, plan, 0)
    assert state.decided is None and state.high < 2.7 and state.stop == "futility"
    assert look(-d, "lower", 2.7, plan, 0).stop == "futility"


def test_fewer_than_three_seeds_are_untested():
    state = look(np.array([5.0, 5.1]), "higher", None, SeedPlan((3, 6)), 0)
    assert state.stop == "untested" and state.decided is None and state.n == 2


def test_equal_claims_decide_equivalence_or_difference_against_the_margin():
    plan = SeedPlan((4,))
    inside = look(np.array([0.1, -0.1, 0.05, 0.0]), "equal", 1.0, plan, 0)
    outside = look(np.array([3.0, 3.2, 2.9, 3.1]), "equal", 1.0, plan, 0)
    assert inside.decided == "equal" and outside.decided == "different"


@pytest.mark.parametrize(
    ("low", "high", "direction", "outcome"),
    [
        (0.5, 1.5, "higher", "below"),  # the whole interval short of +2
        (2.5, 4.0, "higher", "above"),  # wholly beyond it
        (1.0, 3.0, "higher", "consistent"),  # holds 2, excludes 0
        (-1.0, 3.0, "higher", "undetermined"),  # holds both 2 and 0: too wide to tell
        (-1.5, -0.5, "lower", "below"),
        (-4.0, -2.5, "lower", "above"),
        (-3.0, -1.0, "lower", "consistent"),
    ],
)
def test_the_size_outcome_in_each_state(low, high, direction, outcome):
    assert size_outcome(low, high, direction, 2.0) == outcome


def test_a_size_must_be_a_positive_magnitude():
    with pytest.raises(ValueError, match="magnitude > 0"):
        size_outcome(0.0, 1.0, "higher", -1.0)


def test_the_minimum_detectable_effect_is_the_noncentral_t_solution():
    mde = minimum_detectable_effect(sd=2.0, n=3)
    nct = scipy_stats.nct
    crit = scipy_stats.t.isf(0.025, 2)
    delta = mde / 2.0 * np.sqrt(3)
    power = nct.sf(crit, 2, delta) + nct.cdf(-crit, 2, delta)
    assert power == pytest.approx(0.8, abs=1e-3) and minimum_detectable_effect(2.0, 10) < mde


def test_a_bounded_metric_gets_a_sign_test():
    assert sign_test(np.array([0.2, 0.1, 0.4])) == pytest.approx(0.125)
    assert sign_test(np.array([0.2, 0.1, 0.4, 0.3, 0.9])) == pytest.approx(1 / 32)
    state = look(np.array([0.2, 0.1, 0.4]), "higher", None, SeedPlan((3,)), 0, bounded=True)
    assert state.decided is None and state.p_value == pytest.approx(0.125)


@pytest.mark.parametrize(("method", "name"), [("holm", "holm"), ("bh", "fdr_bh")])
def test_the_family_adjustment_is_statsmodels_multipletests(method, name):
    p = [0.0007, 0.0009, 0.0017, 0.0023, 0.0028, 0.0028, 0.038, *np.linspace(0.1, 0.9, 16)]  # 23 claims
    decided, adjusted = adjust(p, method)
    reject, expected, _, _ = multipletests(p, alpha=0.05, method=name)
    assert decided == list(reject) and adjusted == pytest.approx(list(expected))
    assert sum(decided) == (4 if method == "holm" else 6)  # the review's counts (section 2.4)
