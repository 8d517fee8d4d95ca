"""Improved precision and recall (``lwgen.eval.metrics.precision_recall``) on hand-made point sets
whose k-NN balls, and so whose precision and recall, are known exactly."""

import numpy as np
import pytest
from scipy.spatial.distance import cdist

from lwgen.eval.conditional import balanced_precision_recall
from lwgen.eval.metrics import knn_radii, precision_recall


def _line(xs) -> np.ndarray:
    """Points ``(x, 0)``: float ``[len(xs), 2]``."""
    xs = np.asarray(xs, np.float64)
    return np.stack([xs, np.zeros_like(xs)], axis=1)


def test_radii_reach_the_kth_other_point():
    # Points 0..7: the end points' 3rd neighbours are 3 away, the inner ones' 2 away.
    assert knn_radii(_line(range(8)), k=3).tolist() == [9, 4, 4, 4, 4, 4, 4, 9]
    assert knn_radii(_line(range(8)), k=1).tolist() == [1] * 8


def test_precision_and_recall_of_overlapping_lines():
    # Real balls cover [-3, 10]: generated 4.5..7.5 are in, 100..103 out -> precision 4/8.
    # Generated balls cover [1.5, 10.5] and [97, 106]: real 2..7 are in, 0 and 1 out -> recall 6/8.
    real = _line(range(8))
    generated = _line([100, 101, 102, 103, 4.5, 5.5, 6.5, 7.5])
    assert precision_recall(real, generated, k=3) == (0.5, 0.75)
    # Swapping the sets swaps the two numbers.
    assert precision_recall(generated, real, k=3) == (0.75, 0.5)


def test_ball_boundaries_count_as_inside():
    # Real radii 3 (ends) and 2: a generated point exactly at -3 or 10 is on a ball's boundary.
    real = _line(range(8))
    on_boundary = _line([-3, 10, -3.001, 10.001])
    assert precision_recall(real, on_boundary, k=3)[0] == 0.5


def test_identical_and_disjoint_sets():
    points = np.random.default_rng(0).standard_normal((50, 8))
    assert precision_recall(points, points) == (1.0, 1.0)
    assert precision_recall(points, points + 100.0) == (0.0, 0.0)


def _grid(low: float, high: float, step: float) -> np.ndarray:
    """The square grid ``{low, low + step, ..., high}²``: float ``[n², 2]``."""
    axis = np.arange(low, high + step / 2, step)
    return np.stack(np.meshgrid(axis, axis), axis=-1).reshape(-1, 2)


def test_mode_dropping_lowers_recall_not_precision():
    # Real: two 10×10 unit grids far apart (inner radius 1, so the hull of each is covered).
    # Generated: a 0.25-spaced grid on [2, 6]², inside the first (radii at most √2/4 < 1):
    # every sample is inside (precision 1); only the 25 real points 2..6 × 2..6 are covered.
    real = np.concatenate([_grid(0, 9, 1), _grid(0, 9, 1) + 50.0])
    generated = _grid(2, 6, 0.25)
    assert precision_recall(real, generated) == (1.0, 25 / 200)


@pytest.mark.parametrize("batch_size", [1, 7, 1000])
def test_batching_matches_the_full_distance_matrix(batch_size):
    rng = np.random.default_rng(2)
    real, generated = rng.standard_normal((60, 5)), rng.standard_normal((45, 5)) + 0.3
    radii_real = np.sort(cdist(real, real), axis=1)[:, 3]
    radii_generated = np.sort(cdist(generated, generated), axis=1)[:, 3]
    precision = np.mean(np.any(cdist(generated, real) <= radii_real, axis=1))
    recall = np.mean(np.any(cdist(real, generated) <= radii_generated, axis=1))
    got = precision_recall(real, generated, k=3, batch_size=batch_size)
    np.testing.assert_allclose(got, (precision, recall))
    np.testing.assert_allclose(knn_radii(real, 3, batch_size), radii_real**2, rtol=1e-9)


def test_balanced_version_subsamples_the_larger_set():
    # 8 real points against 8 far ones and 800 copies of a real point: with all 808 points
    # precision would be 800/808; on 8 against 8 it can only be a multiple of 1/8.
    real = _line(range(8))
    generated = np.concatenate([_line([100.0 + i for i in range(8)]), _line([3.0] * 800)])
    scores = balanced_precision_recall(real, generated, seed=0)
    assert scores["precision"] * 8 == int(scores["precision"] * 8)
    assert scores == balanced_precision_recall(real, generated, seed=0)


@pytest.mark.parametrize(
    "real, generated, kwargs, message",
    [
        (np.zeros((3, 2)), np.zeros((9, 2)), {}, "real must be \\[N, D\\] with N > k = 3"),
        (np.zeros((9, 2)), np.zeros(9), {}, "generated must be \\[N, D\\]"),
        (np.zeros((9, 2)), np.zeros((9, 3)), {}, "feature sizes differ"),
        (np.full((9, 2), np.nan), np.zeros((9, 2)), {}, "real must be finite"),
        (np.zeros((9, 2)), np.zeros((9, 2)), {"k": 0}, "k and batch_size must be >= 1"),
    ],
)
def test_bad_inputs_are_rejected(real, generated, kwargs, message):
    with pytest.raises(ValueError, match=message):
        precision_recall(real, generated, **kwargs)
