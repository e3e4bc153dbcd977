"""Small shared helpers for the proof modules (not proofs themselves)."""

from __future__ import annotations

import numpy as np

from jacobian_nn.fd import compare, fd_gradient, fd_jacobian

#: Tolerances for exact-formula comparisons (two closed forms of one quantity in float64).
EXACT_ATOL = 1e-12
EXACT_RTOL = 1e-10

#: What the running check established, for the rows of ``jacobian-nn verify`` (``_verify`` clears it
#: before each check and reads it after): ``("numeric", max abs error, max rel error, tolerance)`` per
#: comparison, ``("differs", max abs difference)`` per stated formula shown wrong, ``("zero",)`` per
#: symbolic identity simplified to 0, ``("nonzero",)`` per symbolic difference shown not to vanish.
RECORD: list[tuple] = []


def assert_fd(name, analytic, fn, x, *, step_direction=0, initial_step=None, gradient=False):
    """Assert ``analytic`` equals the finite-difference Jacobian (or row gradient) of ``fn`` at ``x``."""
    kw = {"step_direction": step_direction}
    if initial_step is not None:
        kw["initial_step"] = initial_step
    res = (fd_gradient if gradient else fd_jacobian)(fn, x, **kw)
    c = compare(name, np.asarray(analytic, dtype=np.float64).reshape(res.df.shape), res.df, err=res.error)
    RECORD.append(("numeric", c.max_abs, c.max_rel, c.tolerance))
    assert c.passed, f"{name}: max abs {c.max_abs:.3e} at {c.location} (tol {c.tolerance:.1e})"
    return res.df


def fd(fn, x, *, gradient=False, **kw):
    """The finite-difference Jacobian ``(m, n)`` (or row ``(1, n)``) of ``fn`` at ``x``."""
    return (fd_gradient if gradient else fd_jacobian)(fn, x, **kw).df


def assert_close(name, a, b, atol=EXACT_ATOL, rtol=EXACT_RTOL):
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    assert a.shape == b.shape, f"{name}: shape {a.shape} != {b.shape}"
    if a.size:
        d, scale = np.abs(a - b), np.maximum(np.abs(a), np.abs(b))
        i = np.unravel_index(int(np.argmax(d)), d.shape)
        rel = float(np.max(np.where(scale > atol, d / np.where(scale > atol, scale, 1.0), 0.0)))  # as compare()
        RECORD.append(("numeric", float(d[i]), rel, float(atol + rtol * abs(b[i]))))
    assert np.allclose(a, b, atol=atol, rtol=rtol), f"{name}: max abs diff {np.max(np.abs(a - b)):.3e}"


def assert_differs(name, a, b, by=None, atol=1e-6):
    """Assert ``a`` and ``b`` differ; with ``by``, assert ``max|a - b|`` equals ``by`` within ``atol``."""
    d = float(np.max(np.abs(np.asarray(a, dtype=np.float64) - np.asarray(b, dtype=np.float64))))
    assert d > atol, f"{name}: expected a difference, got max abs diff {d:.3e}"
    if by is not None:
        assert abs(d - by) <= atol, f"{name}: expected a difference of {by}, got {d}"
    RECORD.append(("differs", d))


def sym_zero(sp, expr, name="identity"):
    """Assert a sympy expression or matrix simplifies to exactly zero."""
    M = expr if isinstance(expr, sp.MatrixBase) else sp.Matrix([expr])
    for e in M:
        r = sp.simplify(e)
        if r != 0:
            r = sp.simplify(sp.expand(sp.together(r)))
        assert r == 0, f"{name}: does not simplify to 0, left {r}"
    RECORD.append(("zero",))


def sym_nonzero(sp, expr, name="difference"):
    """Assert a sympy expression or matrix does NOT simplify to zero (an erratum is really wrong)."""
    M = expr if isinstance(expr, sp.MatrixBase) else sp.Matrix([expr])
    assert any(sp.simplify(e) != 0 for e in M), f"{name}: simplifies to 0, so the claimed erratum is not one"
    RECORD.append(("nonzero",))


def rng(seed=0):
    return np.random.default_rng(seed)


def assert_raises(exc, fn, match=""):
    """Assert ``fn()`` raises ``exc`` with ``match`` in its message (no pytest: verify runs without it)."""
    try:
        fn()
    except exc as e:
        assert match in str(e), f"expected {match!r} in the message, got {e}"
        return e
    raise AssertionError(f"expected {exc.__name__}, nothing was raised")
