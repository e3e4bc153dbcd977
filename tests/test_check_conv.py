"""The checker's image references: conv2d, maxpool2d, avgpool2d and spatial_batchnorm against CS231n-style
naive layers written here (loops, as a student writes them), with planted slips and exact pooling ties."""

import re

import numpy as np
import pytest

import jacobian_nn as jn

# --------------------------------------------------------------------------- naive CS231n-style layers


def conv_forward_naive(x, w, b, conv_param):
    S, P = conv_param["stride"], conv_param["pad"]
    N, C, H, W = x.shape
    F, _, HH, WW = w.shape
    OH, OW = (H + 2 * P - HH) // S + 1, (W + 2 * P - WW) // S + 1
    xp = np.pad(x, ((0, 0), (0, 0), (P, P), (P, P)))
    out = np.zeros((N, F, OH, OW))
    for n in range(N):
        for f in range(F):
            for i in range(OH):
                for j in range(OW):
                    out[n, f, i, j] = np.sum(xp[n, :, i * S : i * S + HH, j * S : j * S + WW] * w[f]) + b[f]
    return out, (x, w, b, conv_param)


def _conv_backward(dout, cache, flip_dw=False):
    x, w, b, conv_param = cache
    S, P = conv_param["stride"], conv_param["pad"]
    N, C, H, W = x.shape
    F, _, HH, WW = w.shape
    _, _, OH, OW = dout.shape
    xp = np.pad(x, ((0, 0), (0, 0), (P, P), (P, P)))
    dxp, dw, db = np.zeros_like(xp), np.zeros_like(w), dout.sum(axis=(0, 2, 3))
    for n in range(N):
        for f in range(F):
            for i in range(OH):
                for j in range(OW):
                    win = xp[n, :, i * S : i * S + HH, j * S : j * S + WW]
                    dw[f] += dout[n, f, i, j] * (win[:, ::-1, ::-1] if flip_dw else win)
                    dxp[n, :, i * S : i * S + HH, j * S : j * S + WW] += dout[n, f, i, j] * w[f]
    return dxp[:, :, P : P + H, P : P + W], dw, db


def conv_backward_naive(dout, cache):
    return _conv_backward(dout, cache)


def conv_backward_flipped_dw(dout, cache):
    return _conv_backward(dout, cache, flip_dw=True)


def _pool_forward(x, pool_param, reduce):
    PH, PW, S = pool_param["pool_height"], pool_param["pool_width"], pool_param["stride"]
    N, C, H, W = x.shape
    OH, OW = (H - PH) // S + 1, (W - PW) // S + 1
    out = np.zeros((N, C, OH, OW))
    for i in range(OH):
        for j in range(OW):
            out[:, :, i, j] = reduce(x[:, :, i * S : i * S + PH, j * S : j * S + PW], axis=(2, 3))
    return out


def max_pool_forward_naive(x, pool_param):
    return _pool_forward(x, pool_param, np.max), (x, pool_param)


def _max_pool_backward(dout, cache, route):
    x, pool_param = cache
    PH, PW, S = pool_param["pool_height"], pool_param["pool_width"], pool_param["stride"]
    N, C, OH, OW = dout.shape
    dx = np.zeros_like(x)
    for n in range(N):
        for c in range(C):
            for i in range(OH):
                for j in range(OW):
                    win = x[n, c, i * S : i * S + PH, j * S : j * S + PW]
                    tied = np.flatnonzero(win.reshape(-1) == win.max())
                    if route == "first":
                        ks = tied[:1]
                    elif route == "last":
                        ks = tied[-1:]
                    elif route == "all":
                        ks = tied
                    elif route == "none_at_ties":
                        ks = tied if len(tied) == 1 else tied[:0]
                    else:  # a slip: always the window's first element
                        ks = np.array([0])
                    for k in ks:
                        dx[n, c, i * S + k // PW, j * S + k % PW] += dout[n, c, i, j]
    return dx


def max_pool_backward_naive(dout, cache):
    return _max_pool_backward(dout, cache, "first")


def max_pool_backward_last(dout, cache):
    return _max_pool_backward(dout, cache, "last")


def max_pool_backward_all_tied(dout, cache):
    return _max_pool_backward(dout, cache, "all")


def max_pool_backward_corner(dout, cache):
    return _max_pool_backward(dout, cache, "corner")


def avg_pool_forward(x, pool_param):
    return _pool_forward(x, pool_param, np.mean), (x.shape, pool_param)


def avg_pool_backward(dout, cache, scale=1.0):
    shape, pool_param = cache
    PH, PW, S = pool_param["pool_height"], pool_param["pool_width"], pool_param["stride"]
    dx = np.zeros(shape)
    for i in range(dout.shape[2]):
        for j in range(dout.shape[3]):
            dx[:, :, i * S : i * S + PH, j * S : j * S + PW] += scale * dout[:, :, i : i + 1, j : j + 1] / (PH * PW)
    return dx


def spatial_bn_forward(x, gamma, beta, bn_param):
    N, C, H, W = x.shape
    xt = x.transpose(0, 2, 3, 1).reshape(-1, C)
    if bn_param["mode"] == "train":
        mu, var = xt.mean(0), xt.var(0)
    else:
        mu, var = bn_param["running_mean"], bn_param["running_var"]
    sig = np.sqrt(var + bn_param.get("eps", 1e-5))
    xh = (xt - mu) / sig
    out = (gamma * xh + beta).reshape(N, H, W, C).transpose(0, 3, 1, 2)
    return out, (xh, gamma, sig, x.shape, bn_param["mode"])


def spatial_bn_backward(dout, cache, per_pixel=False):
    xh, gamma, sig, (N, C, H, W), mode = cache
    dt = dout.transpose(0, 2, 3, 1).reshape(-1, C)
    dxh = dt * gamma
    if mode == "train" and not per_pixel:
        M = dt.shape[0]
        dxt = (M * dxh - dxh.sum(0) - xh * (dxh * xh).sum(0)) / (M * sig)
    else:
        dxt = dxh / sig
    back = dxt.reshape(N, H, W, C).transpose(0, 3, 1, 2)
    return back, (dt * xh).sum(0), dt.sum(0)


def spatial_bn_backward_per_pixel(dout, cache):
    return spatial_bn_backward(dout, cache, per_pixel=True)


# --------------------------------------------------------------------------- convolution


@pytest.fixture
def conv_case():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(2, 1, 5, 5))
    w, b = rng.normal(size=(2, 1, 3, 3)), rng.normal(size=2)
    return x, w, b


@pytest.mark.parametrize("conv_param", [{"stride": 1, "pad": 0}, {"stride": 2, "pad": 1}])
def test_naive_conv_backward_passes_against_the_reference(conv_case, conv_param):
    x, w, b = conv_case
    kw = {"w": w, "b": b, "conv_param": conv_param}
    r = jn.check_batch_vjp(
        *jn.from_cs231n(conv_forward_naive, conv_backward_naive, **kw), x, reference="conv2d", reference_kwargs=kw
    )
    assert r.passed, r.summary
    assert [s.gradient for s in r.sections] == ["dx", "dw", "db"]
    dx = r.sections[0]
    assert any(w_.name.startswith("reference conv2d") and w_.passed for w_ in dx.witnesses)
    # the same reference with the library's own names
    direct = {"W": w, "b": b, "stride": conv_param["stride"], "pad": conv_param["pad"]}
    r2 = jn.check_batch_vjp(
        *jn.from_cs231n(conv_forward_naive, conv_backward_naive, **kw), x, reference="conv2d", reference_kwargs=direct
    )
    assert r2.passed


def test_conv_dw_with_the_kernel_flipped_fails(conv_case):
    x, w, b = conv_case
    kw = {"w": w, "b": b, "conv_param": {"stride": 1, "pad": 1}}
    r = jn.check_batch_vjp(
        *jn.from_cs231n(conv_forward_naive, conv_backward_flipped_dw, **kw), x, reference="conv2d", reference_kwargs=kw
    )
    assert r.verdict == "fail" and r.gradient == "dw"
    assert [s.verdict for s in r.sections] == ["pass", "fail", "pass"]


def test_conv_forward_with_a_flipped_kernel_differs_from_the_reference(conv_case):
    """Convolution is cross-correlation: a forward that flips the kernel is another function; its own
    correct backward agrees with finite differences, and the reference witness says the forward differs."""
    x, w, b = conv_case
    cp = {"stride": 1, "pad": 0}

    def flipped_forward(x, w, b, conv_param):
        return conv_forward_naive(x, w[:, :, ::-1, ::-1], b, conv_param)

    def flipped_backward(dout, cache):
        x, w, b, conv_param = cache
        dx, dw, db = conv_backward_naive(dout, cache)
        return dx, dw[:, :, ::-1, ::-1], db

    kw = {"w": w, "b": b, "conv_param": cp}
    r = jn.check_batch_vjp(
        *jn.from_cs231n(flipped_forward, flipped_backward, **kw), x, reference="conv2d", reference_kwargs=kw
    )
    assert r.verdict == "fail" and r.gradient == "dx"
    assert any("differs from the library's conv2d forward" in n for n in r.notes)
    fd = r.sections[0].witnesses[0]
    assert fd.name.startswith("finite differences") and fd.passed


@pytest.mark.parametrize(
    "kwargs, words",
    [
        ({"b": np.zeros(2), "conv_param": {"stride": 1, "pad": 0}}, "missing ['W']"),
        ({"W": np.zeros((2, 1, 3, 3)), "b": np.zeros(2), "strides": 1}, "unknown keyword argument(s) ['strides']"),
        ({"W": np.zeros((2, 3, 3, 3)), "b": np.zeros(2)}, "W: expected 1 input channels"),
        ({"W": np.zeros((2, 1, 3, 3)), "b": np.zeros(3)}, "b: expected shape (2,)"),
        ({"W": np.zeros((2, 1, 3, 3)), "b": np.zeros(2), "stride": 3}, "is not an integer"),
        ({"W": np.zeros((2, 1, 3, 3)), "b": np.zeros(2), "pad": -1}, "pad: expected an integer >= 0"),
        ({"W": np.zeros((2, 1, 3, 3)), "b": np.zeros(2), "stride": 1, "conv_param": {"stride": 1}}, "given both"),
        ({"W": np.zeros((2, 1, 3, 3)), "b": np.zeros(2), "conv_param": {"padding": 1}}, "unknown key(s) ['padding']"),
    ],
)
def test_conv_reference_refuses_bad_hyperparameters_before_calling_the_code(conv_case, kwargs, words):
    x, w, b = conv_case
    calls = []

    def forward(x, w, b, conv_param):
        calls.append(1)
        return conv_forward_naive(x, w, b, conv_param)

    with pytest.raises(ValueError, match="reference='conv2d'") as info:
        jn.check_batch_vjp(
            *jn.from_cs231n(forward, conv_backward_naive, w=w, b=b, conv_param={"stride": 1, "pad": 0}),
            x,
            reference="conv2d",
            reference_kwargs=kwargs,
        )
    assert words in str(info.value)
    assert calls == []


def test_conv_reference_with_hyperparameters_of_another_size_is_an_error(conv_case):
    x, w, b = conv_case
    kw = {"w": w, "b": b, "conv_param": {"stride": 1, "pad": 0}}
    with pytest.raises(ValueError, match="the library's output has 100 entries"):
        jn.check_batch_vjp(
            *jn.from_cs231n(conv_forward_naive, conv_backward_naive, **kw),
            x,
            reference="conv2d",
            reference_kwargs={"W": w, "b": b, "pad": 1, "stride": 1},
        )


def test_conv_reference_with_other_weights_fails(conv_case):
    """Near-miss of the pass above: same sizes, other weights; the claim is right for its own f, the
    reference says the forward differs."""
    x, w, b = conv_case
    kw = {"w": w, "b": b, "conv_param": {"stride": 1, "pad": 0}}
    r = jn.check_batch_vjp(
        *jn.from_cs231n(conv_forward_naive, conv_backward_naive, **kw),
        x,
        reference="conv2d",
        reference_kwargs={"W": 2 * w, "b": b},
    )
    assert r.verdict == "fail" and r.gradient == "dx"
    assert any("forward" in n and "differs" in n for n in r.notes)


def test_conv_reference_on_a_single_image(conv_case):
    x, w, b = conv_case
    layer = jn.Conv2D.from_params(w, b, x.shape[1:], pad=1)

    def f(img):
        return layer.forward_batched(img.reshape(1, -1))[0].reshape(layer.output_shape)

    def vjp(img, g):
        _, ctx = layer.forward_batched(img.reshape(1, -1))
        return layer.backward_batched(g.reshape(1, -1), ctx)[0].reshape(img.shape)

    r = jn.check_vjp(f, vjp, x[0], reference="conv2d", reference_kwargs={"W": w, "b": b, "pad": 1})
    assert r.passed and any(w_.name.startswith("reference conv2d") for w_ in r.witnesses)
    with pytest.raises(ValueError, match=r"expected images of shape \(N, C, H, W\)"):
        jn.check_batch_vjp(
            lambda X: X, lambda X, G: G, x.reshape(2, -1), reference="conv2d", reference_kwargs={"W": w, "b": b}
        )


# --------------------------------------------------------------------------- max pooling

POOL = {"pool_height": 2, "pool_width": 2, "stride": 2}


def _tied_images():
    """Integers 0..2: most 2x2 windows have an exact tie of their maximum (two, three or four equal)."""
    x = np.random.default_rng(3).integers(0, 3, size=(2, 2, 4, 4)).astype(np.float64)
    x[0, 0, :2, :2] = [[2.0, 2.0], [1.0, 2.0]]  # a sure tie, first maximum at (0, 0)
    return x


def _max_pool_check(backward, x, **kw):
    kw = kw or {"pool_param": POOL}
    return jn.check_batch_vjp(
        *jn.from_cs231n(max_pool_forward_naive, backward, pool_param=POOL),
        x,
        reference="maxpool2d",
        reference_kwargs=kw,
    )


def test_naive_max_pool_backward_passes_away_from_ties():
    x = np.random.default_rng(1).normal(size=(2, 2, 4, 4))
    for kw in ({"pool_param": POOL}, {"pool_size": 2}, {"pool_height": 2, "pool_width": 2, "stride": 2}):
        r = _max_pool_check(max_pool_backward_naive, x, **kw)
        assert r.passed and r.diagnosis == "rounding", r.summary
        assert any(w.name.startswith("reference maxpool2d") and w.passed for w in r.witnesses)


def test_wrong_routing_away_from_ties_fails():
    x = np.random.default_rng(1).normal(size=(2, 2, 4, 4))
    r = _max_pool_check(max_pool_backward_corner, x)
    assert r.verdict == "fail"
    assert not any(w.passed for w in r.witnesses if w.name.startswith(("finite", "reference")))


def test_first_maximum_at_an_exact_tie_is_a_kink_not_a_bug():
    """Near-miss: the library's own convention at exact ties passes, named a kink, and the reference
    witness agrees entry by entry."""
    r = _max_pool_check(max_pool_backward_naive, _tied_images())
    assert r.passed and r.diagnosis == "kink", r.summary
    assert r.kinks and all(e.note == "kink" for e in r.kinks)
    ref = [w for w in r.witnesses if w.name.startswith("reference maxpool2d")]
    assert ref and ref[0].passed
    assert not any("convention, not a bug" in n for n in r.notes)  # it is the library's own choice


def test_the_last_maximum_at_a_tie_is_another_convention_not_a_bug():
    """Routing a tie to the last maximum puts each entry between its one-sided derivatives 0 and dout: a
    kink, and a note that the library routes it to the first maximum."""
    r = _max_pool_check(max_pool_backward_last, _tied_images())
    assert r.passed and r.diagnosis == "kink", r.summary
    assert any("first maximal element" in n and "convention, not a bug" in n for n in r.notes)


def test_every_tied_element_getting_the_gradient_fails():
    """Each entry lies between its one-sided derivatives, but along all tied elements at once the window's
    maximum grows at rate 1, not 2: the reference witness adds the tied entries up and fails the claim."""
    r = _max_pool_check(max_pool_backward_all_tied, _tied_images())
    assert r.verdict == "fail", r.summary
    assert "do not add up to the upstream gradient" in r.summary
    assert any(
        re.search("tie.s. the claimed gradients of the tied maximal elements add up to [23]", n) for n in r.notes
    )
    assert not any("not a bug" in n for n in r.notes)
    fd = r.witnesses[0]
    assert fd.name.startswith("finite differences") and fd.passed and fd.diagnosis == "kink"
    # near-miss: away from ties the same code is the right gradient
    x = np.random.default_rng(1).normal(size=(2, 2, 4, 4))
    assert _max_pool_check(max_pool_backward_all_tied, x).passed


def test_wrong_routing_at_ties_still_fails():
    """Ties excuse only claims between the one-sided derivatives: the window's corner, when it is not a
    maximum, has both one-sided derivatives 0."""
    x = _tied_images()
    assert np.any(x[:, :, ::2, ::2] < np.maximum.reduce([x[:, :, i::2, j::2] for i in (0, 1) for j in (0, 1)]))
    r = _max_pool_check(max_pool_backward_corner, x)
    assert r.verdict == "fail" and r.diagnosis != "kink"


@pytest.mark.parametrize(
    "kwargs, words",
    [
        ({}, "missing ['pool_height', 'pool_width']"),
        ({"pool_size": 2, "pool_height": 2}, "give the window once"),
        ({"pool_size": (2, 2, 2)}, "pool_size: expected an int or (PH, PW)"),
        ({"pool_size": 3}, "is not an integer"),
        ({"pool_param": {"pool_height": 2, "pool_width": 2, "stride": 0}}, "stride: expected an integer >= 1"),
        ({"pool_param": {"height": 2}}, "unknown key(s) ['height']"),
    ],
)
def test_pool_reference_refuses_bad_hyperparameters(kwargs, words):
    with pytest.raises(ValueError, match="reference='maxpool2d'") as info:
        jn.check_batch_vjp(
            *jn.from_cs231n(max_pool_forward_naive, max_pool_backward_naive, pool_param=POOL),
            np.zeros((1, 1, 4, 4)),
            reference="maxpool2d",
            reference_kwargs=kwargs,
        )
    assert words in str(info.value)


def test_pool_reference_with_another_stride_is_an_error():
    x = np.random.default_rng(1).normal(size=(1, 1, 4, 4))
    with pytest.raises(ValueError, match="the library's output has 9 entries"):
        _max_pool_check(max_pool_backward_naive, x, pool_size=2, stride=1)


# --------------------------------------------------------------------------- average pooling, spatial batch norm


def test_avg_pool_passes_and_a_missing_division_fails():
    x = np.random.default_rng(2).normal(size=(2, 2, 4, 4))
    kw = {"pool_param": POOL}
    good = jn.check_batch_vjp(
        *jn.from_cs231n(avg_pool_forward, avg_pool_backward, **kw), x, reference="avgpool2d", reference_kwargs=kw
    )
    assert good.passed and good.diagnosis == "rounding"
    bad = jn.check_batch_vjp(
        *jn.from_cs231n(avg_pool_forward, lambda d, c: avg_pool_backward(d, c, 4.0), **kw),
        x,
        reference="avgpool2d",
        reference_kwargs=kw,
    )
    assert bad.verdict == "fail" and bad.diagnosis == "constant_factor" and bad.factor == pytest.approx(4.0)


@pytest.mark.parametrize("mode", ["train", "test"])
def test_spatial_batchnorm_reference(mode):
    rng = np.random.default_rng(4)
    x = rng.normal(size=(2, 3, 2, 2))
    gamma, beta = rng.normal(size=3), rng.normal(size=3)
    bn_param = {"mode": mode, "eps": 1e-5}
    if mode == "test":
        bn_param.update(running_mean=rng.normal(size=3), running_var=rng.uniform(0.5, 2.0, size=3))
    kw = {"gamma": gamma, "beta": beta, "bn_param": bn_param}
    good = jn.check_batch_vjp(
        *jn.from_cs231n(spatial_bn_forward, spatial_bn_backward, **kw),
        x,
        reference="spatial_batchnorm",
        reference_kwargs=kw,
    )
    assert good.passed, good.summary
    assert any(w.name.startswith("reference spatial_batchnorm") and w.passed for w in good.sections[0].witnesses)
    per_pixel = jn.check_batch_vjp(
        *jn.from_cs231n(spatial_bn_forward, spatial_bn_backward_per_pixel, **kw),
        x,
        reference="spatial_batchnorm",
        reference_kwargs=kw,
    )
    # in test mode the per-pixel formula is the right one (near-miss); in train mode it misses the coupling
    assert per_pixel.passed == (mode == "test")


@pytest.mark.parametrize(
    "kwargs, words",
    [
        ({"gamma": np.ones(3)}, "missing ['beta']"),
        ({"gamma": np.ones(2), "beta": np.zeros(3)}, "gamma: expected shape (3,)"),
        ({"gamma": np.ones(3), "beta": np.zeros(3), "mode": "test"}, "needs running_mean and running_var"),
        ({"gamma": np.ones(3), "beta": np.zeros(3), "mode": "eval"}, "mode: expected 'train' or 'test'"),
        ({"gamma": np.ones(3), "beta": np.zeros(3), "eps": 0}, "eps: expected a number > 0"),
    ],
)
def test_spatial_batchnorm_reference_errors(kwargs, words):
    x = np.random.default_rng(4).normal(size=(2, 3, 2, 2))
    with pytest.raises(ValueError, match="reference='spatial_batchnorm'") as info:
        jn.check_batch_vjp(lambda X: X, lambda X, G: G, x, reference="spatial_batchnorm", reference_kwargs=kwargs)
    assert words in str(info.value)


def test_a_tie_shared_out_between_the_tied_maxima_is_a_kink():
    def shared(dout, cache):
        x, pool_param = cache
        dx = np.zeros_like(x)
        for n, c, i, j in np.ndindex(dout.shape):
            win = x[n, c, 2 * i : 2 * i + 2, 2 * j : 2 * j + 2]
            tied = win == win.max()
            dx[n, c, 2 * i : 2 * i + 2, 2 * j : 2 * j + 2] += tied * dout[n, c, i, j] / tied.sum()
        return dx

    r = _max_pool_check(shared, _tied_images())
    assert r.passed and r.diagnosis == "kink", r.summary


CLI_MODULE = """
import numpy as np
from test_check_conv import max_pool_forward_naive, max_pool_backward_naive, max_pool_backward_all_tied
POOL = {"pool_height": 2, "pool_width": 2, "stride": 2}
KW = {"pool_param": POOL}
BAD = {"pool_size": 2, "strides": 2}
X = np.random.default_rng(3).integers(0, 3, size=(2, 2, 4, 4)).astype(np.float64)
"""


@pytest.mark.parametrize(
    "backward, kwargs, code",
    [
        ("max_pool_backward_naive", "KW", 0),
        ("max_pool_backward_all_tied", "KW", 1),
        ("max_pool_backward_naive", "BAD", 2),
    ],
)
def test_cli_reference_maxpool2d(tmp_path, monkeypatch, capsys, backward, kwargs, code):
    from jacobian_nn.check.cli import EXIT_CODES
    from jacobian_nn.cli import main

    monkeypatch.syspath_prepend(str(__import__("pathlib").Path(__file__).parent))
    path = tmp_path / "pools.py"
    path.write_text(CLI_MODULE, encoding="utf-8")
    got = main(
        [
            "check",
            str(path),
            "--forward",
            "max_pool_forward_naive",
            "--backward",
            backward,
            "--shape",
            "2,2,4,4",
            "--arg",
            "POOL",
            "--input",
            "X",
            "--reference",
            "maxpool2d",
            "--reference-kwargs",
            kwargs,
        ]
    )
    out = capsys.readouterr()
    assert got == [EXIT_CODES["pass"], EXIT_CODES["fail"], EXIT_CODES["usage error"]][code], out
    if code == 2:
        assert "strides" in out.err + out.out


def test_no_gradient_at_a_tie_fails():
    """Each tied entry 0 lies between its one-sided derivatives 0 and 1, but the window's maximum still moves:
    the tied entries add up to 0, not 1."""

    def none_at_ties(dout, cache):
        return _max_pool_backward(dout, cache, "none_at_ties")

    r = _max_pool_check(none_at_ties, _tied_images())
    assert r.verdict == "fail" and "add up to 0" in " ".join(r.notes), r.summary


def test_a_sparse_jacobian_is_checked_by_its_values():
    """The library's convolution Jacobians are ``scipy.sparse`` csr arrays: passed as the claim, they are
    compared by their dense values (they were refused as 'not deterministic', their objects compared by
    bits). Near misses: one wrong entry fails, the transpose is diagnosed as transposed."""
    layer = jn.Conv2D((2, 5, 5), 3, 3, stride=1, pad=1, seed=0)
    x = np.random.default_rng(0).normal(size=(50, 1))

    def f(v):
        return layer.forward(v)[0]

    def one_wrong(v):
        J = layer.jacobian_x(v).tolil()
        J[3, 7] += 0.5
        return J.tocsr()

    assert jn.check_jacobian(f, layer.jacobian_x, x).verdict == "pass"
    r = jn.check_jacobian(f, one_wrong, x)
    assert r.verdict == "fail" and (r.worst[0].row, r.worst[0].column) == (3, 7) and r.worst[1].passed, str(r)
    assert jn.check_jacobian(f, lambda v: layer.jacobian_x(v).T, x).diagnosis == "transposed"
