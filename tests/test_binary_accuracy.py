"""Accuracy decided by the loss: argmax for the multiclass losses, p >= 0.5 for BinaryCrossEntropy and z >= 0
for SigmoidBinaryCrossEntropy (one decision per output), on the reference path, the batched path and in the
Solver, with the ties at exactly p = 0.5 and z = 0."""

import numpy as np
import pytest

import jacobian_nn as jn
from jacobian_nn.layers import Dense
from jacobian_nn.losses import BinaryCrossEntropy, MulticlassSVM, SigmoidBinaryCrossEntropy, SoftmaxCrossEntropy
from jacobian_nn.network import Network
from jacobian_nn.optimizers import SGD
from jacobian_nn.solver import Solver


def one_layer(loss, b, *, n_in=2, W=None):
    """A single Dense layer (n_in -> len(b)) whose outputs on X = 0 are exactly act(b)."""
    b = np.asarray(b, dtype=float)
    act = "sigmoid" if loss == "binary_cross_entropy" else "identity"
    W = np.zeros((n_in, b.size)) if W is None else W
    return Network([Dense.from_params(W, b, act)], loss)


def all_accuracies(net, X, y):
    """Network.accuracy (reference), accuracy_batched and Solver.accuracy, which must agree."""
    solver = Solver(net, {"X_train": X, "y_train": y, "X_val": X, "y_val": y}, SGD(0.1), epochs=1, batch_size=1)
    return net.accuracy(X, y), net.accuracy_batched(X, y), solver.accuracy(X, y, batch_size=3)


@pytest.mark.parametrize(
    "loss, b, yes",
    [
        ("binary_cross_entropy", 0.0, True),  # p = sigmoid(0) = 0.5 exactly: the tie is a yes
        ("binary_cross_entropy", -1e-9, False),  # p = 0.4999999997...: a no
        ("binary_cross_entropy", 1e-9, True),
        ("sigmoid_binary_cross_entropy", 0.0, True),  # z = 0: the tie is a yes
        ("sigmoid_binary_cross_entropy", -1e-300, False),  # sigmoid(z) rounds to 0.5, the logit says no
        ("sigmoid_binary_cross_entropy", 1e-300, True),
    ],
)
def test_single_output_binary_decisions_at_the_tie(loss, b, yes):
    net = one_layer(loss, [b])
    X = np.zeros((4, 2))
    out = net.predict(X)
    if loss == "binary_cross_entropy" and b == 0.0:
        assert np.all(out == 0.5)
    if loss == "sigmoid_binary_cross_entropy" and b == -1e-300:
        assert 1 / (1 + np.exp(-out[0, 0])) == 0.5  # a p >= 0.5 rule on the rounded sigmoid would say yes
    y = np.array([1, 1, 0, 1])
    want = 0.75 if yes else 0.25
    assert all_accuracies(net, X, y) == (want, want, want)
    assert net.loss.predict_labels(out).tolist() == [[yes]] * 4


@pytest.mark.parametrize("labels", ["bool", "int", "float", "column"])
def test_binary_labels_in_every_form(labels):
    net = one_layer("sigmoid_binary_cross_entropy", [0.0], W=np.array([[1.0], [0.0]]))
    X = np.array([[2.0, 0.0], [-1.0, 0.0], [-3.0, 0.0], [0.5, 0.0], [-0.5, 0.0]])  # decisions: y n n y n
    yb = np.array([True, True, False, True, True])
    y = {"bool": yb, "int": yb.astype(int), "float": yb.astype(float), "column": yb[:, None].astype(float)}[labels]
    assert all_accuracies(net, X, y) == (0.6, 0.6, 0.6)


def test_soft_labels_count_as_yes_from_one_half():
    loss = BinaryCrossEntropy()
    P = np.array([[0.7], [0.7], [0.2], [0.2]])
    assert loss.decision_accuracy(P, np.array([0.5, 0.49, 0.5, 0.49])) == 0.5  # 0.5 is a yes, 0.49 a no


def test_multi_output_binary_counts_every_output():
    """Two yes/no outputs per sample: N * m decisions (3 of 4 right here), not an argmax over the outputs."""
    loss = SigmoidBinaryCrossEntropy()
    Z = np.array([[1.0, -2.0], [3.0, 4.0]])
    Y = np.array([[1, 0], [0, 1]])
    assert loss.count_correct(Z, Y) == (3, 4)
    assert loss.decision_accuracy(Z, Y) == 0.75
    net = one_layer("sigmoid_binary_cross_entropy", [1.0, -2.0])
    X = np.zeros((2, 2))
    assert all_accuracies(net, X, np.array([[1, 0], [1, 1]])) == (0.75, 0.75, 0.75)


def test_multiclass_still_uses_argmax():
    """Near-miss of the binary rules: a softmax network's decision is its argmax even where no probability
    reaches 0.5, and a tie goes to the first maximal class."""
    net = one_layer("softmax_cross_entropy", [0.4, 0.35, 0.25])
    X = np.zeros((3, 2))
    assert all_accuracies(net, X, np.array([0, 1, 0])) == (2 / 3, 2 / 3, 2 / 3)
    tie = SoftmaxCrossEntropy()
    assert tie.predict_labels(np.array([[1.0, 1.0, 0.0]])).tolist() == [0]
    assert MulticlassSVM().decision_accuracy(np.array([[0.1, 0.2], [0.3, -1.0]]), np.array([1, 0])) == 1.0
    # one-hot label rows still mean their argmax
    assert tie.decision_accuracy(np.array([[0.1, 0.9], [0.8, 0.2]]), np.array([[0.0, 1.0], [0.0, 1.0]])) == 0.5


def test_bad_binary_labels_are_refused_naming_them():
    net = one_layer("binary_cross_entropy", [0.0])
    X = np.zeros((3, 2))
    with pytest.raises(ValueError, match=r"Y: expected binary labels in \[0, 1\]"):
        net.accuracy(X, np.array([0, 2, 1]))
    with pytest.raises(ValueError, match=r"y_train: expected binary labels of shape \(3, 1\) or \(3,\)"):
        Solver(net, {"X_train": X, "y_train": np.zeros(4), "X_val": X, "y_val": np.zeros(3)}, SGD(0.1), batch_size=1)
    # the multiclass Solver keeps its own check
    mc = one_layer("softmax_cross_entropy", [0.0, 0.0])
    with pytest.raises(ValueError, match=r"y_val: expected labels in \[0, 1\]"):
        Solver(mc, {"X_train": X, "y_train": np.zeros(3, int), "X_val": X, "y_val": np.array([0, 2, 1])}, SGD(0.1))


def test_solver_trains_a_logistic_regression_and_reports_its_accuracy():
    """deeplearning.ai's logistic regression: one sigmoid-BCE output on two separable blobs; the Solver's
    accuracy (z >= 0) reaches 1, and the batched and reference accuracies agree with it."""
    rng = np.random.default_rng(0)
    X = np.vstack([rng.normal(loc=-2.0, size=(20, 2)), rng.normal(loc=2.0, size=(20, 2))])
    y = np.r_[np.zeros(20, bool), np.ones(20, bool)]
    net = jn.Network.build([2, 1], loss="sigmoid_binary_cross_entropy", seed=1)
    solver = Solver(
        net, {"X_train": X, "y_train": y, "X_val": X, "y_val": y}, SGD(0.5), epochs=20, batch_size=8, seed=2
    )
    history = solver.train()
    assert history.val_acc[-1] == 1.0
    assert net.accuracy(X, y) == net.accuracy_batched(X, y) == 1.0
