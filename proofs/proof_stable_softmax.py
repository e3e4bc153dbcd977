r"""Numerically stable softmax: the shift identity (the DLFS notes and CS231n walkthrough) and what each source's code does."""

from __future__ import annotations

import numpy as np

from jacobian_nn.activations import Softmax

from ._helpers import assert_close, assert_differs, sym_zero
from ._registry import HOLDS, WRONG, proof, require_sympy, symbolic


def _shifted(a, axis=-1):
    """The shifted softmax: ``np.exp(a - c) / np.sum(np.exp(a - c))``, ``c = np.max(a)``."""
    e = np.exp(a - np.max(a, axis=axis, keepdims=True))
    return e / np.sum(e, axis=axis, keepdims=True)


@proof(
    id="stable.shift_identity",
    seed="002",
    location="§softmax 函数 (C' derivation); CS231n walkthrough §4.1 ($\\log C = -\\max_j x_{ij}$); numpy-layers post note",
    statement=r"$y_k = \frac{\exp(a_k)}{\sum_i\exp(a_i)} = \frac{C\exp(a_k)}{C\sum_i\exp(a_i)} = "
    r"\frac{\exp(a_k+C')}{\sum_i\exp(a_i+C')}$; $C' = -\max a$ avoids overflow: "
    r"[1010, 1000, 990] -> [9.99954600e-01, 4.53978686e-05, 2.06106005e-09]",
    verdict=HOLDS,
)
def test_shift_identity(claim=_shifted):
    r"""**DLFS notes, the overflow countermeasure (and CS231n walkthrough's $\log C = -\max_j x_{ij}$, numpy-layers post's note).**

    > $y_k = \frac{\exp(a_k)}{\sum_{i} \exp(a_i)} = \frac{C\exp(a_k)}{C\sum_{i}\exp(a_i)} = \frac{\exp(a_k + \log C)}{\sum_{i} \exp(a_i + \log C)}
    > = \frac{\exp(a_k + C')}{\sum_{i} \exp(a_i + C')}$; ``np.exp(a) / np.sum(np.exp(a))`` on ``[1010, 1000, 990]`` gives
    > ``[nan, nan, nan]``; with ``c = np.max(a)``: ``[9.99954600e-01, 4.53978686e-05, 2.06106005e-09]``.

    Derivation. Multiplying numerator and denominator by $C = e^{C'} > 0$ changes nothing, and
    $Ce^{a} = e^{a + C'}$. With $C' = -\max_i a_i$ every exponent is $\le 0$, so no term overflows and the
    largest term is exactly 1 (the denominator is $\ge 1$, so nothing divides by an underflowed 0).
    (The notes' stable code as printed puts ``sum_exp_a = np.sum(exp_a)`` inside the comment ``# 溢出对策``
    and so does not run: proof ``code.softmax_comment002``. This proof is about the identity.)

    Verdict: **holds**. Check: sympy (the shifted expression minus the original is 0 for a symbolic shift);
    the source's numbers (naive overflows to nan, shifted matches to 9 digits); ``Softmax.forward``.
    """
    a = np.array([1010.0, 1000.0, 990.0])
    with np.errstate(over="ignore", invalid="ignore"):
        naive = np.exp(a) / np.sum(np.exp(a))
    assert np.all(np.isnan(naive))
    stable = claim(a)
    assert_close("source's printed values", stable, [9.99954600e-01, 4.53978686e-05, 2.06106005e-09], atol=0, rtol=5e-9)
    assert_close("library Softmax.forward", Softmax().forward(a[:, None])[:, 0], stable)
    b = np.array([0.3, 2.9, 4.0])
    assert_close("source's small example", np.exp(b) / np.exp(b).sum(), [0.01821127, 0.24519181, 0.73659691], atol=5e-9)


@symbolic("stable.shift_identity")
def test_shift_identity_symbolic():
    sp = require_sympy()
    a = sp.symbols("a0:3", real=True)
    c = sp.Symbol("c", real=True)
    for k in range(3):
        lhs = sp.exp(a[k]) / sum(sp.exp(v) for v in a)
        rhs = sp.exp(a[k] + c) / sum(sp.exp(v + c) for v in a)
        sym_zero(sp, lhs - rhs, f"shift invariance, k={k}")


def _seed000_softmax(z):
    """FCNN-Jacobian notes ``Softmax.__call__``: ``_exp(z) / np.sum(_exp(z))`` with ``_exp = exp(clip(z, -maxV, maxV))``,
    ``maxV = log(float32 max)`` = 88.72; no max shift."""
    maxv = np.log(np.finfo(np.float32).max)
    e = np.exp(np.clip(z, -maxv, maxv))
    return e / np.sum(e)


@proof(
    id="stable.clip000",
    seed="000",
    location="NNFunctions.py, _exp and Softmax.__call__",
    statement="_exp(z) = np.exp(np.clip(z, -_maxV, _maxV)), _maxV = log(float32 max); softmax = _exp(z) / sum(_exp(z))",
    verdict=WRONG,
    corrected="clipping changes the value: logits above 88.72 (or below -88.72) are flattened (e.g. [100, 99] "
    "and [-100, -101] -> [0.5, 0.5] instead of [0.731, 0.269]); subtract the max instead (exact, no clip)",
)
def test_clip000(seed=_seed000_softmax, corrected=_shifted):
    r"""**FCNN-Jacobian notes, softmax through a clipped exponential.**

    > ``_maxV = np.log(np.finfo(np.float32).max)``; ``def _exp(z): return np.exp(np.clip(z, -_maxV, _maxV))``;
    > ``Softmax.__call__``: ``return _exp(z) / np.sum(_exp(z))``.

    Derivation. Clipping avoids ``inf`` but is not an identity: every logit above $\log(3.4\cdot10^{38}) = 88.72$
    maps to the same value, so differences between large logits are lost; likewise every logit below $-88.72$
    (there the clip does avoid a $0/0$, since $e^{-88.72}\approx 3\cdot10^{-39}$ is representable, but again at the
    price of flattening). The shift by the max (proof ``stable.shift_identity``) is exact.

    Verdict: **wrong** (silently wrong values for logits beyond $\pm 88.72$). Check: restated code on $[100, 99]$
    (and on $[-100, -101]$) gives $[0.5, 0.5]$, off by $0.231$ from the true softmax (= ``Softmax.forward``).
    """
    z = np.array([100.0, 99.0])
    code = seed(z)
    true = Softmax().forward(z[:, None])[:, 0]
    assert_close("corrected = softmax", corrected(z), true)
    assert_close("code flattens", code, [0.5, 0.5])
    assert_differs("code vs true softmax", code, true, by=float(true[0] - 0.5), atol=1e-12)
    assert_close("flattened below -88.72 too", seed(np.array([-100.0, -101.0])), [0.5, 0.5])
    assert_close("agrees below the clip", seed(np.array([3.0, 1.0])), Softmax().forward(np.array([[3.0], [1.0]]))[:, 0])


def _noshift003(logits):
    """The MLP's ``exp_logits = np.exp(logits); exp_logits / np.sum(exp_logits, axis=1, keepdims=True)``."""
    with np.errstate(over="ignore", invalid="ignore"):
        e = np.exp(logits)
        return e / np.sum(e, axis=1, keepdims=True)


@proof(
    id="stable.noshift003",
    seed="003",
    location="§Model / Training / MLPFromScratch.predict: exp_logits = np.exp(logits) (also numpy-layers post §'单独的Softmax层', "
    "DLFS notes first softmax)",
    statement="y_hat = np.exp(logits) / np.sum(np.exp(logits), axis=1, keepdims=True) (no max shift)",
    verdict=WRONG,
    corrected="subtract the row max first: np.exp(logits - logits.max(axis=1, keepdims=True)); "
    "without it any logit above 709.78 overflows to inf and the row becomes nan",
)
def test_noshift003(seed=_noshift003, corrected=lambda logits: _shifted(logits, axis=1)):
    r"""**Made-With-ML MLP's softmax (and numpy-layers post's separate softmax layer, DLFS notes' first ``softmax``).**

    > ``exp_logits = np.exp(logits)``; ``y_hat = exp_logits / np.sum(exp_logits, axis=1, keepdims=True)``.

    Derivation. ``np.exp`` overflows in float64 above $\log(1.8\cdot10^{308}) = 709.78$; then
    $\infty/\infty = $ nan. numpy-layers post's own note says to subtract the max; CS231n walkthrough's ``softmax_loss`` does. With
    small weights (``0.01 * randn``) the logits stay small in the source's run, so the result there is right,
    but the formula is not safe in general.

    Verdict: **wrong** (unsafe; exact only while no logit exceeds 709.78). Check: restated code gives nan on a
    row with a logit of 800, the shifted version and ``Softmax.forward_batched`` give the right probabilities.
    """
    logits = np.array([[800.0, 799.0, 0.0], [1.0, 2.0, 3.0]])
    code = seed(logits)
    assert np.all(np.isnan(code[0, :2])) and code[0, 2] == 0.0  # inf/inf and 1/inf
    lib = Softmax().forward_batched(logits)
    assert_close("corrected = library", corrected(logits), lib)
    assert_close("row 1 agrees", code[1], lib[1])
    assert_close("shifted row 0", lib[0], [1 / (1 + np.exp(-1)), np.exp(-1) / (1 + np.exp(-1)), 0.0], atol=1e-12)
