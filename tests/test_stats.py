"""stats.py: McNemar and kappa against hand-worked values, the bootstrap against sklearn."""

from __future__ import annotations

import math

import numpy as np
import pytest
from sklearn.metrics import accuracy_score, cohen_kappa_score, precision_recall_fscore_support

from emoprobe.results import stats

K = 5  # labels 0..4; code 5 is "unparsed"


def random_codes(seed: int, n: int = 300, skill: float = 0.6) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    y_true = rng.integers(0, K, n)
    y_pred = np.where(rng.random(n) < skill, y_true, rng.integers(0, K + 1, n))
    return y_true, y_pred


# -- McNemar ------------------------------------------------------------------------
def test_mcnemar_exact_by_hand():
    # b=1, c=6: n=7, P(X<=1) = (1 + 7) / 2**7 = 1/16; two-sided: 1/8
    result = stats.mcnemar_from_counts(1, 6)
    assert (result.b, result.c, result.discordant) == (1, 6, 7)
    assert result.p_value == 0.125
    assert result.method == stats.EXACT and result.statistic is None


def test_mcnemar_from_per_image_correctness():
    first = [True] * 10 + [True] * 1 + [False] * 6 + [False] * 3  # 10 both right, 3 both wrong
    second = [True] * 10 + [False] * 1 + [True] * 6 + [False] * 3
    result = stats.mcnemar(first, second)
    assert (result.b, result.c, result.p_value) == (1, 6, 0.125)
    swapped = stats.mcnemar(second, first)
    assert (swapped.b, swapped.c, swapped.p_value) == (6, 1, 0.125)


@pytest.mark.parametrize(
    ("b", "c", "p"),
    [
        (0, 0, 1.0),  # no discordant pair: nothing to test
        (3, 3, 1.0),  # twice the tail exceeds 1: capped
        (0, 5, 2 / 32),
        (3, 20, 2 * (1 + 23 + 253 + 1771) / 2**23),
        (12, 12, 1.0),  # 24 discordant: still exact
    ],
)
def test_mcnemar_exact_values(b, c, p):
    result = stats.mcnemar_from_counts(b, c)
    assert result.method == stats.EXACT
    assert result.p_value == pytest.approx(p, rel=1e-12)


def test_mcnemar_chi_square_with_continuity_correction_by_hand():
    # b=10, c=30: (|10-30| - 1)^2 / 40 = 361 / 40 = 9.025; P(chi2_1 > 9.025) = erfc(sqrt(4.5125))
    result = stats.mcnemar_from_counts(10, 30)
    assert result.method == stats.CHI2
    assert result.statistic == pytest.approx(9.025)
    assert result.p_value == pytest.approx(0.0026631192591386, rel=1e-9)
    assert stats.mcnemar_from_counts(13, 12).method == stats.CHI2  # 25 discordant
    assert stats.mcnemar_from_counts(20, 20).p_value == 1.0


def test_exact_binomial_matches_scipy():
    from scipy.stats import binomtest

    for n in range(1, 30):
        for k in range(n + 1):
            expected = binomtest(k, n, 0.5).pvalue
            assert stats.exact_binomial_p(k, n) == pytest.approx(expected, rel=1e-9, abs=1e-15)


# -- kappa --------------------------------------------------------------------------
def test_kappa_worked_by_hand():
    # 10 images: both "happy" 4, both "tired" 4, one disagreement each way.
    # p_o = 0.8; each run says happy 5 times: p_e = 0.5*0.5 + 0.5*0.5 = 0.5;
    # kappa = (0.8 - 0.5) / (1 - 0.5) = 0.6
    a = ["happy"] * 4 + ["tired"] * 4 + ["happy", "tired"]
    b = ["happy"] * 4 + ["tired"] * 4 + ["tired", "happy"]
    assert stats.cohen_kappa(a, b) == pytest.approx(0.6)
    assert stats.agreement(a, b) == pytest.approx(0.8)


def test_kappa_three_classes_by_hand_and_sklearn():
    # Counts (rows: first run, columns: second) over happy, tired, unparsed:
    #   [[3, 1, 0], [0, 2, 1], [1, 0, 2]]; n = 10, p_o = 7/10
    # first: happy 4, tired 3, unparsed 3; second: happy 4, tired 3, unparsed 3
    # p_e = (16 + 9 + 9) / 100 = 0.34; kappa = (0.7 - 0.34) / 0.66 = 0.545454...
    pairs = (
        [("happy", "happy")] * 3
        + [("happy", "tired")]
        + [("tired", "tired")] * 2
        + [("tired", "unparsed")]
        + [("unparsed", "happy")]
        + [("unparsed", "unparsed")] * 2
    )
    a, b = zip(*pairs, strict=True)
    assert stats.cohen_kappa(a, b) == pytest.approx(0.36 / 0.66)
    assert stats.cohen_kappa(a, b) == pytest.approx(cohen_kappa_score(a, b))


def test_kappa_undefined_is_none():
    assert stats.cohen_kappa(["happy"] * 5, ["happy"] * 5) is None
    assert stats.cohen_kappa([], []) is None


# -- scores from confusion counts -----------------------------------------------------
@pytest.mark.parametrize("seed", range(4))
def test_scores_from_confusion_equal_scikit_learn(seed):
    y_true, y_pred = random_codes(seed)
    confusion = stats.confusion_counts(y_true, y_pred, K, K + 1)
    scores = stats.scores_from_confusion(confusion, K)
    labels = list(range(K))
    _, _, f1, _ = precision_recall_fscore_support(
        y_true, y_pred, labels=labels, average="weighted", zero_division=0
    )
    _, _, per_class, _ = precision_recall_fscore_support(
        y_true, y_pred, labels=labels, average=None, zero_division=0
    )
    assert scores["f1_weighted"] == pytest.approx(f1, abs=1e-12)
    assert scores["accuracy"] == pytest.approx(accuracy_score(y_true, y_pred), abs=1e-12)
    assert scores["f1_per_class"] == pytest.approx(per_class, abs=1e-12)


def test_a_class_never_predicted_scores_zero_not_nan():
    y_true = np.array([0, 0, 1, 1])
    y_pred = np.array([0, 0, 0, 5])  # class 1 never predicted
    scores = stats.scores_from_confusion(stats.confusion_counts(y_true, y_pred, 2, 3), 2)
    assert scores["f1_per_class"].tolist() == pytest.approx([0.8, 0.0])


# -- the bootstrap ------------------------------------------------------------------
def test_bootstrap_is_deterministic_for_a_seed():
    y_true, first = random_codes(1)
    _, second = random_codes(2)
    one = stats.paired_bootstrap(y_true, [first, second], K, resamples=1000, seed=7)
    two = stats.paired_bootstrap(y_true, [first, second], K, resamples=1000, seed=7)
    other = stats.paired_bootstrap(y_true, [first, second], K, resamples=1000, seed=8)
    assert np.array_equal(one.f1_weighted, two.f1_weighted)
    assert np.array_equal(one.accuracy, two.accuracy)
    assert one.f1_weighted.shape == (2, 1000) and one.f1_per_class.shape == (2, 1000, K)
    assert not np.array_equal(one.f1_weighted, other.f1_weighted)
    assert one.difference_interval("f1_weighted", 1) == two.difference_interval("f1_weighted", 1)


def test_bootstrap_intervals_contain_the_point_estimates():
    y_true, first = random_codes(3, n=400, skill=0.5)
    _, second = random_codes(4, n=400, skill=0.7)
    second = np.where(np.random.default_rng(5).random(400) < 0.7, y_true, second)
    boot = stats.paired_bootstrap(y_true, [first, second], K, resamples=2000, seed=0)
    points = [
        stats.scores_from_confusion(stats.confusion_counts(y_true, p, K, K + 1), K)
        for p in (first, second)
    ]
    for run, point in enumerate(points):
        low, high = boot.interval("f1_weighted", run)
        assert low < point["f1_weighted"] < high
        low, high = boot.interval("accuracy", run)
        assert low < point["accuracy"] < high
    low, high = boot.difference_interval("f1_weighted", 1)
    assert low < points[1]["f1_weighted"] - points[0]["f1_weighted"] < high
    assert low > 0  # the second run is clearly better on these images


def test_a_run_against_itself_differs_by_exactly_zero():
    y_true, pred = random_codes(6)
    boot = stats.paired_bootstrap(y_true, [pred, pred.copy()], K, resamples=1000, seed=0)
    assert boot.difference_interval("f1_weighted", 1) == (0.0, 0.0)
    assert boot.difference_interval("accuracy", 1) == (0.0, 0.0)


def test_pattern_bootstrap_has_the_spread_of_resampling_image_indices():
    """Multinomial counts over patterns = drawing image indices: same distribution."""
    y_true, pred = random_codes(9, n=250)
    boot = stats.paired_bootstrap(y_true, [pred], K, resamples=4000, seed=1)
    rng = np.random.default_rng(2)
    naive = []
    for _ in range(4000):
        index = rng.integers(0, len(y_true), len(y_true))
        confusion = stats.confusion_counts(y_true[index], pred[index], K, K + 1)
        naive.append(stats.scores_from_confusion(confusion, K)["f1_weighted"])
    assert boot.f1_weighted[0].mean() == pytest.approx(np.mean(naive), abs=0.005)
    assert boot.f1_weighted[0].std() == pytest.approx(np.std(naive), rel=0.08)


def test_bootstrap_refuses_nonsense():
    with pytest.raises(ValueError):
        stats.paired_bootstrap(np.array([], dtype=int), [np.array([], dtype=int)], K)
    with pytest.raises(ValueError):
        stats.paired_bootstrap(np.array([0, 7]), [np.array([0, 1])], K)
    with pytest.raises(ValueError):
        stats.paired_bootstrap(np.array([0]), [np.array([0])], K, resamples=0)


def test_percentile_interval():
    values = np.arange(1001, dtype=float)
    assert stats.percentile_interval(values) == (25.0, 975.0)
    assert math.isclose(stats.chi2_1df_p(3.841458820694124), 0.05, rel_tol=1e-9)


# McNemar p-values emoprobe 0.1.0 computed by hand (integer binomial tails, erfc), pinned
# before the test moved to scipy.stats: the same to the last bits.
@pytest.mark.parametrize(
    ("b", "c", "p", "method"),
    [
        (0, 0, 1.0, stats.EXACT),
        (0, 1, 1.0, stats.EXACT),
        (3, 5, 0.7265625, stats.EXACT),
        (0, 24, 1.1920928955078125e-07, stats.EXACT),
        (12, 12, 1.0, stats.EXACT),
        (5, 19, 0.006610751152038574, stats.EXACT),
        (10, 30, 0.002663119259138554, stats.CHI2),
        (13, 12, 1.0, stats.CHI2),
        (0, 40, 6.984393061522158e-10, stats.CHI2),
        (100, 130, 0.055850113675743406, stats.CHI2),
    ],
)
def test_mcnemar_p_values_are_those_of_emoprobe_0_1_0(b, c, p, method):
    result = stats.mcnemar_from_counts(b, c)
    assert result.method == method
    assert result.p_value == pytest.approx(p, rel=1e-12)
