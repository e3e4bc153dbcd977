"""Metrics: hand-worked example, identities on random labels, and scikit-learn when it is installed."""

import numpy as np
import pytest
from hypothesis import given, strategies as st

from jacobian_nn.metrics import accuracy, classification_report, confusion_matrix, precision_recall_f1


def test_hand_worked_example():
    y_true = np.array([0, 0, 1, 1, 1, 2])
    y_pred = np.array([0, 1, 1, 1, 0, 0])
    C = confusion_matrix(y_true, y_pred, 3)
    assert C.tolist() == [[1, 1, 0], [1, 2, 0], [1, 0, 0]]
    p, r, f1, s = precision_recall_f1(y_true, y_pred, 3)
    np.testing.assert_allclose(p, [1 / 3, 2 / 3, 0.0])  # class 2 never predicted -> 0
    np.testing.assert_allclose(r, [1 / 2, 2 / 3, 0.0])
    np.testing.assert_allclose(f1, [0.4, 2 / 3, 0.0])
    assert s.tolist() == [2, 3, 1] and accuracy(y_true, y_pred) == 0.5
    rep = classification_report(y_true, y_pred, ["a", "b", "c"])
    assert rep["class"]["b"]["num_samples"] == 3
    assert rep["overall"]["recall"] == pytest.approx(0.5)  # weighted recall = accuracy


@given(st.lists(st.tuples(st.integers(0, 4), st.integers(0, 4)), min_size=1, max_size=40))
def test_identities(pairs):
    t, p = np.array(pairs).T
    C = confusion_matrix(t, p, 5)
    assert C.sum() == len(t) and np.trace(C) == np.sum(t == p)
    assert accuracy(t, p) == pytest.approx(np.trace(C) / C.sum())
    _, r, _, s = precision_recall_f1(t, p, 5)
    assert float((s / s.sum()) @ r) == pytest.approx(accuracy(t, p))


def test_against_scikit_learn():
    sk = pytest.importorskip("sklearn.metrics", reason="scikit-learn not installed")
    rng = np.random.default_rng(0)
    t, p = rng.integers(0, 4, 200), rng.integers(0, 4, 200)
    ours = precision_recall_f1(t, p, 4)
    theirs = sk.precision_recall_fscore_support(t, p, labels=range(4), zero_division=0)
    for a, b in zip(ours, theirs):
        np.testing.assert_allclose(a, b)
    assert np.array_equal(confusion_matrix(t, p, 4), sk.confusion_matrix(t, p, labels=range(4)))


def test_bad_input():
    with pytest.raises(ValueError, match="y_pred: expected shape"):
        accuracy([0, 1], [0])
    with pytest.raises(TypeError, match="integer labels"):
        accuracy([0.0, 1.0], [0, 1])
    with pytest.raises(ValueError, match="n_classes"):
        confusion_matrix([0, 3], [0, 1], 2)
