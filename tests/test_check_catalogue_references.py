"""The checker's catalogue references: ``layernorm`` and the losses ``svm``, ``softmax_cross_entropy``,
``binary_cross_entropy`` and ``sigmoid_binary_cross_entropy``, against CS231n / deeplearning.ai-style
implementations written here as a student writes them, with planted slips and the kinks."""

import numpy as np
import pytest

import jacobian_nn as jn
from jacobian_nn.check import REFERENCES

# --------------------------------------------------------------------------- CS231n-style code


def layernorm_forward(x, gamma, beta, ln_param):
    eps = ln_param.get("eps", 1e-5)
    mu = x.mean(axis=1, keepdims=True)
    xc = x - mu
    std = np.sqrt((xc**2).mean(axis=1, keepdims=True) + eps)
    xhat = xc / std
    return gamma * xhat + beta, (xhat, std, gamma)


def layernorm_backward(dout, cache):
    xhat, std, gamma = cache
    D = xhat.shape[1]
    dh = dout * gamma
    dx = (D * dh - dh.sum(axis=1, keepdims=True) - xhat * (dh * xhat).sum(axis=1, keepdims=True)) / (D * std)
    return dx, (dout * xhat).sum(axis=0), dout.sum(axis=0)


def layernorm_backward_no_xhat_term(dout, cache):
    """A planted slip: the variance's path through x_hat is forgotten."""
    xhat, std, gamma = cache
    D = xhat.shape[1]
    dh = dout * gamma
    dx = (D * dh - dh.sum(axis=1, keepdims=True)) / (D * std)
    return dx, (dout * xhat).sum(axis=0), dout.sum(axis=0)


def svm_loss(x, y, at_zero=False):
    N = x.shape[0]
    rows = np.arange(N)
    margins = x - x[rows, y][:, None] + 1.0
    margins[rows, y] = 0
    loss = np.maximum(0, margins).sum() / N
    pos = ((margins >= 0) if at_zero else (margins > 0)).astype(float)
    pos[rows, y] = 0
    pos[rows, y] = -pos.sum(axis=1)
    return loss, pos / N


def svm_loss_counting_zero_margins(x, y):
    """Another convention at the kink: a margin of exactly 0 counted as active (``margins >= 0``)."""
    return svm_loss(x, y, at_zero=True)


def svm_loss_sign_slip(x, y):
    """A planted slip: the correct class's entry has the wrong sign."""
    loss, dx = svm_loss(x, y)
    rows = np.arange(x.shape[0])
    dx[rows, y] = -dx[rows, y]
    return loss, dx


def svm_loss_margin_two(x, y):
    """Consistent with itself (its gradient is right for its own loss), but Delta = 2, not CS231n's 1."""
    return _svm_delta(x, y, 2.0)


def _svm_delta(x, y, delta):
    N = x.shape[0]
    rows = np.arange(N)
    margins = x - x[rows, y][:, None] + delta
    margins[rows, y] = 0
    pos = (margins > 0).astype(float)
    pos[rows, y] = -pos.sum(axis=1)
    return np.maximum(0, margins).sum() / N, pos / N


def softmax_loss(x, y):
    s = x - x.max(axis=1, keepdims=True)
    lp = s - np.log(np.exp(s).sum(axis=1, keepdims=True))
    N = x.shape[0]
    dx = np.exp(lp)
    dx[np.arange(N), y] -= 1
    return -lp[np.arange(N), y].mean(), dx / N


def bce_loss(p, y):
    """deeplearning.ai's cost on probabilities, batch rows as in CS231n: mean over the N samples."""
    y = np.asarray(y, dtype=float).reshape(p.shape)
    N = p.shape[0]
    loss = -np.sum(y * np.log(p) + (1 - y) * np.log(1 - p)) / N
    return loss, (-y / p + (1 - y) / (1 - p)) / N


def bce_loss_summed(p, y):
    """Consistent with itself, but summed over the batch instead of averaged."""
    loss, dp = bce_loss(p, y)
    return loss * p.shape[0], dp * p.shape[0]


def sigmoid_bce_loss(z, y):
    y = np.asarray(y, dtype=float).reshape(z.shape)
    N = z.shape[0]
    loss = np.sum(np.maximum(z, 0) - y * z + np.log1p(np.exp(-np.abs(z)))) / N
    return loss, (1 / (1 + np.exp(-z)) - y) / N


def sigmoid_bce_loss_wrong_sign(z, y):
    """A planted slip: y - sigma(z) instead of sigma(z) - y."""
    loss, dz = sigmoid_bce_loss(z, y)
    return loss, -dz


@pytest.fixture
def batch():
    rng = np.random.default_rng(3)
    return rng.normal(size=(4, 5)), rng.normal(size=5) + 1.0, rng.normal(size=5)


# --------------------------------------------------------------------------- layer norm


def test_layernorm_is_a_reference():
    for name in ("layernorm", "svm", "softmax_cross_entropy", "binary_cross_entropy", "sigmoid_binary_cross_entropy"):
        assert name in REFERENCES


@pytest.mark.parametrize("ln_param", [{}, {"eps": 1e-3}])
def test_cs231n_layernorm_passes_against_the_reference(batch, ln_param):
    x, gamma, beta = batch
    kw = {"gamma": gamma, "beta": beta, "ln_param": ln_param}
    r = jn.check_batch_vjp(
        *jn.from_cs231n(layernorm_forward, layernorm_backward, gamma, beta, ln_param),
        x,
        reference="layernorm",
        reference_kwargs=kw,
    )
    assert r.passed, r.summary
    assert [s.gradient for s in r.sections] == ["dx", "dgamma", "dbeta"]
    ref = [w for w in r.sections[0].witnesses if w.name.startswith("reference layernorm")]
    assert len(ref) == 1 and ref[0].passed and ref[0].max_rel < 1e-12
    # the library's names: eps given directly
    direct = {"gamma": gamma, "beta": beta, "eps": ln_param.get("eps", 1e-5)}
    r2 = jn.check_batch_vjp(
        *jn.from_cs231n(layernorm_forward, layernorm_backward, gamma, beta, ln_param),
        x,
        reference="layernorm",
        reference_kwargs=direct,
    )
    assert r2.passed


def test_layernorm_with_the_xhat_term_forgotten_fails_in_dx_only(batch):
    x, gamma, beta = batch
    r = jn.check_batch_vjp(
        *jn.from_cs231n(layernorm_forward, layernorm_backward_no_xhat_term, gamma, beta, {}),
        x,
        reference="layernorm",
        reference_kwargs={"gamma": gamma, "beta": beta},
    )
    assert r.verdict == "fail" and r.gradient == "dx" and r.diagnosis == "mismatch"
    assert [s.verdict for s in r.sections] == ["fail", "pass", "pass"]
    ref = [w for w in r.sections[0].witnesses if w.name.startswith("reference layernorm")][0]
    assert not ref.passed


def test_layernorm_with_another_eps_differs_from_the_reference(batch):
    """Near-miss of the pass: the code is right for its own eps (1e-1), the reference is given the default;
    finite differences agree with the claim, the reference witness says the forward differs."""
    x, gamma, beta = batch
    r = jn.check_batch_vjp(
        *jn.from_cs231n(layernorm_forward, layernorm_backward, gamma, beta, {"eps": 1e-1}),
        x,
        reference="layernorm",
        reference_kwargs={"gamma": gamma, "beta": beta},
    )
    assert r.verdict == "fail" and r.gradient == "dx"
    assert any("differs from the library's layernorm forward" in n for n in r.notes)
    assert r.sections[0].witnesses[0].name.startswith("finite differences") and r.sections[0].witnesses[0].passed


def test_layernorm_jacobians_against_the_reference(batch):
    """check_jacobian (one sample) and check_batch_jacobian (per-sample blocks) with the library's
    own LayerNorm as the claim, so the reference witness compares like with like."""
    x, gamma, beta = batch
    layer = jn.LayerNorm(5, gamma=gamma, beta=beta)
    kw = {"gamma": gamma, "beta": beta}
    r = jn.check_jacobian(
        lambda v: layer.forward(v.reshape(-1, 1))[0][:, 0],
        lambda v: layer.jacobian_x(v.reshape(-1, 1)),
        x[0],
        reference="layernorm",
        reference_kwargs=kw,
    )
    assert r.passed, r.summary
    rb = jn.check_batch_jacobian(
        lambda X: layer.forward_batched(X)[0], layer.jacobian_x_batched, x, reference="layernorm", reference_kwargs=kw
    )
    assert rb.passed, rb.summary
    # a claim with gamma left out of the Jacobian: the finite differences and the reference both fail it
    bad = jn.check_batch_jacobian(
        lambda X: layer.forward_batched(X)[0],
        lambda X: layer.jacobian_x_batched(X) / gamma[None, :, None],
        x,
        reference="layernorm",
        reference_kwargs=kw,
    )
    assert bad.verdict == "fail"
    assert not [w for w in bad.witnesses if w.name.startswith("reference layernorm")][0].passed


@pytest.mark.parametrize(
    "make_kwargs, words",
    [
        (
            lambda g, b: {"gamma": g.reshape(1, -1), "beta": b},
            "gamma: expected shape (5,) (one entry per feature), got shape (1, 5)",
        ),
        (lambda g, b: {"gamma": g.reshape(-1, 1), "beta": b}, "gamma: expected shape (5,)"),
        (lambda g, b: {"gamma": g[:4], "beta": b}, "gamma: expected shape (5,)"),
        (lambda g, b: {"gamma": g, "beta": b[None]}, "beta: expected shape (5,)"),
        (lambda g, b: {"beta": b}, "missing ['gamma']"),
        (lambda g, b: {"gamma": g, "beta": b, "eps": 0.0}, "eps: expected a finite number > 0"),
        (lambda g, b: {"gamma": g, "beta": b, "eps": 1e-5, "ln_param": {"eps": 1e-5}}, "given both"),
        (lambda g, b: {"gamma": g, "beta": b, "ln_param": {"epsilon": 1e-5}}, "ln_param: unknown key(s) ['epsilon']"),
        (lambda g, b: {"gamma": g, "beta": b, "ln_param": {"mode": "eval"}}, "mode: expected 'train' or 'test'"),
        (lambda g, b: {"gamma": g, "beta": b, "momentum": 0.9}, "unknown keyword argument(s) ['momentum']"),
    ],
)
def test_layernorm_reference_refuses_bad_parameters_before_calling_the_code(batch, make_kwargs, words):
    x, gamma, beta = batch
    calls = []

    def forward(x, gamma, beta, ln_param):
        calls.append(1)
        return layernorm_forward(x, gamma, beta, ln_param)

    with pytest.raises(ValueError, match="reference='layernorm'") as info:
        jn.check_batch_vjp(
            *jn.from_cs231n(forward, layernorm_backward, gamma, beta, {}),
            x,
            reference="layernorm",
            reference_kwargs=make_kwargs(gamma, beta),
        )
    assert words in str(info.value)
    assert calls == []


def test_layernorm_mode_in_ln_param_is_accepted_and_ignored(batch):
    x, gamma, beta = batch
    kw = {"gamma": gamma, "beta": beta, "ln_param": {"mode": "test"}}
    r = jn.check_batch_vjp(
        *jn.from_cs231n(layernorm_forward, layernorm_backward, gamma, beta, {}),
        x,
        reference="layernorm",
        reference_kwargs=kw,
    )
    assert r.passed


# --------------------------------------------------------------------------- losses: SVM and softmax


@pytest.fixture
def scores():
    rng = np.random.default_rng(5)
    return rng.normal(size=(6, 4)), rng.integers(0, 4, size=6)


@pytest.mark.parametrize("fn, ref", [(svm_loss, "svm"), (softmax_loss, "softmax_cross_entropy")])
def test_cs231n_losses_pass_against_the_library(scores, fn, ref):
    x, y = scores
    r = jn.check_loss(fn, x, y, reference=ref)
    assert r.passed, r.summary
    ref_w = [w for w in r.witnesses if w.name.startswith(f"reference {ref}")]
    assert len(ref_w) == 1 and ref_w[0].passed and "gradient" in ref_w[0].name
    # through from_cs231n_loss and check_batch_vjp, the same reference
    r2 = jn.check_batch_vjp(*jn.from_cs231n_loss(fn, y), x, reference=ref)
    assert r2.passed, r2.summary


def test_svm_sign_slip_fails_with_a_diagnosis(scores):
    x, y = scores
    r = jn.check_loss(svm_loss_sign_slip, x, y, reference="svm")
    assert r.verdict == "fail"
    # wrong by 2 * (active margins) / N at each label: not one constant, so a located mismatch
    assert r.diagnosis == "mismatch" and "6 of 24 entries are beyond tolerance" in r.notes
    failing = [e for e in r.worst if not e.passed]
    assert failing and all(e.column % 4 == y[e.column // 4] for e in failing)  # every one at a label entry
    assert not [w for w in r.witnesses if w.name.startswith("reference svm")][0].passed


def test_svm_with_another_margin_differs_from_the_library(scores):
    """Right for its own Delta = 2 (finite differences pass), not CS231n's Delta = 1 (the reference fails);
    given delta=2 the reference agrees."""
    x, y = scores
    r = jn.check_loss(svm_loss_margin_two, x, y, reference="svm")
    assert r.verdict == "fail"
    assert r.witnesses[0].name.startswith("finite differences") and r.witnesses[0].passed
    assert any("differs from the library's svm forward" in n for n in r.notes)
    assert "against the library's svm" in r.summary
    assert jn.check_loss(svm_loss_margin_two, x, y, reference="svm", reference_kwargs={"delta": 2.0}).passed


def _at_zero_margin(x, y):
    """Scores with a margin of exactly 0 in sample 0 (class y0 + 1) and sample 2."""
    x = x.copy()
    for k in (0, 2):
        j = (y[k] + 1) % x.shape[1]
        x[k, j] = x[k, y[k]] - 1.0
        assert x[k, j] - x[k, y[k]] + 1.0 == 0.0
    return x


def test_svm_at_a_zero_margin_is_a_kink_with_the_library_convention(scores):
    x, y = scores
    xz = _at_zero_margin(x, y)
    r = jn.check_loss(svm_loss, xz, y, reference="svm")
    assert r.passed and r.diagnosis == "kink"
    assert not any("convention, not a bug" in n for n in r.notes)  # the same convention as the library
    lib = jn.MulticlassSVM()
    g = np.vstack([lib.gradient(xz[k][:, None], int(y[k])) for k in range(len(y))]) / len(y)
    assert g[0, (y[0] + 1) % 4] == 0.0  # 1[0 > 0] = 0


def test_svm_counting_zero_margins_is_another_convention_not_a_bug(scores):
    """Near-miss: margins >= 0 differs from the library only at the kink, and lies between the one-sided
    derivatives there: it passes, with a note naming the library's convention."""
    x, y = scores
    xz = _at_zero_margin(x, y)
    r = jn.check_loss(svm_loss_counting_zero_margins, xz, y, reference="svm")
    assert r.passed and r.diagnosis == "kink"
    assert any("margin of exactly 0 no gradient" in n and "convention, not a bug" in n for n in r.notes)
    # away from the kink the two conventions are the same function
    r2 = jn.check_loss(svm_loss_counting_zero_margins, x, y, reference="svm")
    assert r2.passed and r2.diagnosis == "rounding"


# --------------------------------------------------------------------------- losses: binary


@pytest.fixture
def probs():
    rng = np.random.default_rng(7)
    p = rng.uniform(0.1, 0.9, size=(6, 1))
    y = rng.integers(0, 2, size=6).astype(bool)
    return p, y


@pytest.mark.parametrize("labels", ["bool", "int", "float", "column", "random"])
def test_bce_passes_with_every_label_form(probs, labels):
    p, yb = probs
    y = {
        "bool": yb,
        "int": yb.astype(int),
        "float": yb.astype(float),
        "column": yb[:, None].astype(float),
        "random": None,
    }[labels]
    r = jn.check_loss(bce_loss, p, y, reference="binary_cross_entropy")
    assert r.passed, r.summary
    assert [w for w in r.witnesses if w.name.startswith("reference binary_cross_entropy")][0].passed


def test_bool_labels_reach_the_code_as_bools(probs):
    """The checker passes the labels on as given: code that cannot take bools (``1 - y`` on a bool array)
    is refused with numpy's error as the cause, not silently fed floats."""
    p, yb = probs

    def bce_no_cast(p, y):
        y = y.reshape(p.shape)
        return -np.sum(y * np.log(p) + (1 - y) * np.log(1 - p)) / p.shape[0], (-y / p + (1 - y) / (1 - p)) / p.shape[0]

    r = jn.check_loss(bce_no_cast, p, yb, reference="binary_cross_entropy")
    assert r.verdict == "refused" and "boolean" in r.cause
    assert jn.check_loss(bce_no_cast, p, yb.astype(float), reference="binary_cross_entropy").passed


def test_bce_summed_over_the_batch_fails_against_the_library(probs):
    p, y = probs
    r = jn.check_loss(bce_loss_summed, p, y, reference="binary_cross_entropy")
    assert r.verdict == "fail"
    assert r.witnesses[0].passed  # right for its own (summed) loss
    assert any("differs from the library's binary_cross_entropy forward" in n for n in r.notes)
    ref = [w for w in r.witnesses if w.name.startswith("reference binary_cross_entropy")][0]
    assert not ref.passed
    assert r.diagnosis == "missing_batch_scaling" and r.factor == pytest.approx(6.0)


@pytest.mark.parametrize("shape", [(6, 1), (4, 3)])
def test_sigmoid_bce_passes_and_a_sign_slip_fails(shape):
    rng = np.random.default_rng(11)
    z = rng.normal(scale=3.0, size=shape)
    y = rng.integers(0, 2, size=shape).astype(bool)
    r = jn.check_loss(sigmoid_bce_loss, z, y, reference="sigmoid_binary_cross_entropy")
    assert r.passed, r.summary
    bad = jn.check_loss(sigmoid_bce_loss_wrong_sign, z, y, reference="sigmoid_binary_cross_entropy")
    assert bad.verdict == "fail" and bad.diagnosis == "sign_flipped"


def test_sigmoid_bce_reference_is_the_stable_form_at_large_logits():
    """At z = +-40 the naive gradient sigma(z) - y is still right to rounding; the library's stable form
    agrees with it (the reference witness passes), and its loss is finite where log(sigmoid) is not."""
    z = np.array([[40.0], [-40.0], [0.5]])
    y = np.array([0.0, 1.0, 1.0])
    r = jn.check_loss(sigmoid_bce_loss, z, y, reference="sigmoid_binary_cross_entropy")
    assert r.passed, r.summary


@pytest.mark.parametrize(
    "ref, x, y, kwargs, err, words",
    [
        (
            "binary_cross_entropy",
            np.full((3, 1), 0.5),
            np.array([0, 1, 2]),
            {},
            ValueError,
            "y: expected binary labels in [0, 1]",
        ),
        (
            "binary_cross_entropy",
            np.full((3, 1), 0.5),
            np.zeros(4),
            {},
            ValueError,
            "y: expected binary labels of shape (3, 1)",
        ),
        (
            "binary_cross_entropy",
            np.full((3, 2), 0.5),
            np.zeros(3),
            {},
            ValueError,
            "y: expected binary labels of shape (3, 2)",
        ),
        ("binary_cross_entropy", np.full((3, 1), 1.5), np.zeros(3), {}, ValueError, "probabilities in [0, 1]"),
        (
            "binary_cross_entropy",
            np.full((3, 1), 0.5),
            np.zeros(3),
            {"delta": 1.0},
            ValueError,
            "unknown keyword argument(s) ['delta']",
        ),
        (
            "svm",
            np.zeros((3, 2)),
            np.array([0, 1, 0]),
            {"delta": -1.0},
            ValueError,
            "delta: expected a finite margin > 0",
        ),
        ("svm", np.zeros((3, 2)), np.array([0, 1, 0]), {"y": [0, 0, 0]}, ValueError, "the labels are check_loss's y"),
        ("relu", np.zeros((3, 2)), np.array([0, 1, 0]), {}, ValueError, "check_loss takes a loss reference"),
    ],
)
def test_loss_references_refuse_bad_input_before_calling_the_code(ref, x, y, kwargs, err, words):
    calls = []

    def loss(x, y):
        calls.append(1)
        return 0.0, np.zeros_like(x)

    with pytest.raises(err) as info:
        jn.check_loss(loss, x, y, reference=ref, reference_kwargs=kwargs)
    assert words in str(info.value)
    assert calls == []


def test_a_loss_reference_needs_a_loss_and_a_loss_needs_a_loss_reference(scores):
    x, y = scores
    with pytest.raises(ValueError, match="reference='svm' is a loss: check it with check_loss"):
        jn.check_batch_vjp(lambda X: X * 2, lambda X, G: 2 * G, x, reference="svm")
    with pytest.raises(ValueError, match="a loss is checked against a loss reference"):
        jn.check_batch_vjp(*jn.from_cs231n_loss(svm_loss, y), x, reference="relu")
    with pytest.raises(ValueError, match="num_classes"):
        jn.check_loss(bce_loss, np.full((3, 1), 0.5), np.zeros(3), num_classes=2, reference="binary_cross_entropy")


CLI_MODULE = """
import numpy as np

def svm_loss(x, y):
    N = x.shape[0]
    rows = np.arange(N)
    margins = x - x[rows, y][:, None] + 1.0
    margins[rows, y] = 0
    pos = (margins > 0).astype(float)
    pos[rows, y] = -pos.sum(axis=1)
    return np.maximum(0, margins).sum() / N, pos / N

def svm_loss_delta_two(x, y):
    N = x.shape[0]
    rows = np.arange(N)
    margins = x - x[rows, y][:, None] + 2.0
    margins[rows, y] = 0
    pos = (margins > 0).astype(float)
    pos[rows, y] = -pos.sum(axis=1)
    return np.maximum(0, margins).sum() / N, pos / N

TWO = {"delta": 2.0}
BAD = {"margin": 2.0}
"""


@pytest.mark.parametrize(
    "forward, extra, code",
    [
        ("svm_loss", [], "pass"),
        ("svm_loss_delta_two", [], "fail"),
        ("svm_loss_delta_two", ["--reference-kwargs", "TWO"], "pass"),
        ("svm_loss", ["--reference-kwargs", "BAD"], "usage error"),
    ],
)
def test_cli_loss_reference(tmp_path, capsys, forward, extra, code):
    from jacobian_nn.check.cli import EXIT_CODES
    from jacobian_nn.cli import main

    path = tmp_path / "losses.py"
    path.write_text(CLI_MODULE, encoding="utf-8")
    got = main(["check", str(path), "--forward", forward, "--shape", "5,4", "--reference", "svm"] + extra)
    out = capsys.readouterr()
    assert got == EXIT_CODES[code], out
    if code == "usage error":
        assert "margin" in out.err + out.out


def test_bce_near_the_boundary_is_refused_not_passed():
    """The finite differences step 0.01 from the point: a probability 0.01 from 0 makes the witness (and the
    loss) infinite, so the check is refused; at 0.011 it runs and passes."""
    y = np.array([1, 0, 1])
    refused = jn.check_loss(bce_loss, np.array([[0.01], [0.5], [0.7]]), y, reference="binary_cross_entropy")
    assert refused.verdict == "refused" and refused.diagnosis == "witness_not_finite"
    ok = jn.check_loss(bce_loss, np.array([[0.011], [0.5], [0.7]]), y, reference="binary_cross_entropy")
    assert ok.passed, ok.summary
