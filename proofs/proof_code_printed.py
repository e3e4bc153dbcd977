r"""Code that does not run as printed. Each proof compiles or executes the printed lines (quoted in the
proof, short) and asserts the error; the corrected lines run and compute what the text says they compute.

Where a document's extracted text has lost its indentation (the DLFS notes print every code line at
column 0), the indentation is restored and nothing else is changed; a slip has to be in the characters of
the lines themselves. Where the document keeps its indentation (the numpy-layers post uses tabs), the
lines are compiled exactly as printed."""

from __future__ import annotations

import numpy as np

from ._helpers import assert_close
from ._registry import WRONG, proof


def _run(src: str, env: dict) -> dict:
    """Compile and execute ``src`` (a fixed snippet from a source document) in a copy of ``env``."""
    ns = dict(env)
    exec(compile(src, "<printed>", "exec"), ns)  # noqa: S102 - fixed snippets quoted from the sources
    return ns


def _raises_on_call(exc, fn) -> bool:
    """True when calling ``fn`` raises ``exc``."""
    try:
        fn()
    except exc:
        return True
    return False


def _error_of(src: str, env: dict):
    """The exception type that compiling or running ``src`` raises, or None if it runs."""
    try:
        _run(src, env)
    except Exception as e:  # noqa: BLE001 - the error *is* the evidence
        return type(e)
    return None


# The DLFS notes' overflow-safe softmax. Printed (indentation lost by the document's text, restored here):
#   def softmax(a):
#   c = np.max(a)
#   exp_a = np.exp(a - c) # 溢出对策 sum_exp_a = np.sum(exp_a)
#   y = exp_a / sum_exp_a
#   return y
SOFTMAX002_PRINTED = """
def softmax(a):
    c = np.max(a)
    exp_a = np.exp(a - c) # 溢出对策 sum_exp_a = np.sum(exp_a)
    y = exp_a / sum_exp_a
    return y
out = softmax(np.array([1010.0, 1000.0, 990.0]))
"""
SOFTMAX002_RIGHT = """
def softmax(a):
    c = np.max(a)
    exp_a = np.exp(a - c) # 溢出对策
    sum_exp_a = np.sum(exp_a)
    y = exp_a / sum_exp_a
    return y
out = softmax(np.array([1010.0, 1000.0, 990.0]))
"""


@proof(
    id="code.softmax_comment002",
    seed="002",
    location="§softmax 函数, the overflow-safe softmax as printed",
    statement="exp_a = np.exp(a - c) # 溢出对策 sum_exp_a = np.sum(exp_a); y = exp_a / sum_exp_a",
    verdict=WRONG,
    corrected="the statement sum_exp_a = np.sum(exp_a) is inside the comment, so sum_exp_a is undefined and the "
    "function raises NameError; it needs its own line (then it prints the values the text shows)",
)
def test_softmax_comment002(seed=SOFTMAX002_PRINTED, corrected=SOFTMAX002_RIGHT):
    r"""**DLFS notes, the overflow-safe ``softmax`` as printed.**

    > ``def softmax(a):`` / ``c = np.max(a)`` / ``exp_a = np.exp(a - c) # 溢出对策 sum_exp_a = np.sum(exp_a)`` /
    > ``y = exp_a / sum_exp_a`` / ``return y``

    Derivation. Everything after ``#`` is a comment, so the line defines ``exp_a`` only, and
    ``y = exp_a / sum_exp_a`` reads an undefined name. That the merge is in the source and not an artefact
    of its text: two plots earlier the notes print ``plt.ylim(-0.1, 1.1) # the arange of axis y plt.show()``
    followed by a separate ``plt.show()``, the same comment habit. The identity behind the code holds (proof
    ``stable.shift_identity``).

    Verdict: **wrong** (code that does not run as printed). Check: executing the printed function raises
    ``NameError``; with the statement on its own line it returns the notes' printed values for
    ``[1010, 1000, 990]``.
    """
    env = {"np": np}
    assert _error_of(seed, env) is NameError, "the printed function should raise NameError"
    assert _error_of(corrected, env) is None
    assert_close(
        "the notes' values",
        _run(corrected, env)["out"],
        [9.99954600e-01, 4.53978686e-05, 2.06106005e-09],
        atol=0,
        rtol=5e-9,
    )


# The numpy-layers post, §2 Softmax.forward (tabs as printed):
LAYERS001_PRINTED = (
    "class Softmax:\n"
    "\tdef __init__(self, n_classes):\n"
    "\t\tself.n_classes = n_classes\n"
    "\n"
    "\tdef forward(self, x, y):\n"
    "\t\tprob = np.exp(x-np.max(x, axis=1, keepdims=True))\n"
    "\t\tprob /= np.sum(prob, axis=1, keepdims=True)\n"
    "\t\tloss = -np.sum(np.log(prob[np.arange(len(y), y])) / len(y)\n"
    "\t\tself.grad = prob.copy()\n"
    "\t\tself.grad[np.arange(len(y), y] -= 1\n"
    "\t\tself.grad /= len(y)\n"
    "\t\treturn prob, loss\n"
    "\n"
    "\tdef backward(self):\n"
    "\t\treturn self.grad\n"
)
LAYERS001_RIGHT = LAYERS001_PRINTED.replace("np.arange(len(y), y]", "np.arange(len(y)), y]")
# §'单独的Softmax层' (separate softmax layer), as printed: an empty __init__ and misspelt names.
SOFTMAX_LAYER001_PRINTED = (
    "class Softmax:\n"
    "\tdef __init__(self):\n"
    "\t\t\n"
    "\tdef forward(self, x):\n"
    "\t\t# x: (b, c)\n"
    "\t\tx_exp = np.exp(x)\n"
    "\t\tself.output = x_xep / np.sum(x_exp, axis=1, keep_dims=True)\n"
    "\t\treturn self.output\n"
)
SOFTMAX_LAYER001_RIGHT = SOFTMAX_LAYER001_PRINTED.replace("\t\t\n\tdef forward", "\t\tpass\n\tdef forward").replace(
    "x_xep / np.sum(x_exp, axis=1, keep_dims=True)", "x_exp / np.sum(x_exp, axis=1, keepdims=True)"
)

# §3 Linear, as printed (4-space indentation; its docstring comment left out): the parameter is ``grad``,
# the body reads ``prev_grad``.
LINEAR001_PRINTED = (
    "class Linear:\n"
    "    def __init__(self, in_channels, out_channels, lr):\n"
    "        self.lr = lr\n"
    "        self.w = np.random.rand(in_channels, out_channels)\n"
    "        self.b = np.random.rand(out_channels)\n"
    "\n"
    "    def forward(self, x):\n"
    "        self.x = x\n"
    "        return x@self.w + self.b\n"
    "\n"
    "    def backward(self, grad):\n"
    "        dx = einsum(prev_grad, rearrange(self.w, 'w1 w2 -> w2 w1'), 'c1 b, b c2 -> c1 c2')\n"
    "        dw = einsum(rearrange(self.x, 'b c -> c b'), prev_grad, 'c1 b, b c2 -> c1 c2')\n"
    "        db = np.sum(prev_grad, axis=0)\n"
    "\n"
    "        self.w -= self.lr * dw\n"
    "        self.b -= self.lr * db\n"
    "        return dx\n"
)
LINEAR001_RIGHT = LINEAR001_PRINTED.replace("prev_grad", "grad")


#: The two einops calls the post makes, restated for 2-D arrays: ``rearrange(a, 'p q -> q p')`` is the transpose,
#: ``einsum(a, b, 'c1 b, b c2 -> c1 c2')`` the matrix product (einops' argument order: tensors, then the pattern).
EINOPS_2D = {"rearrange": lambda a, pattern: a.T, "einsum": lambda a, b, pattern: a @ b}


@proof(
    id="code.layers001",
    seed="001",
    location="§2 Softmax.forward; §'单独的Softmax层' (separate softmax layer)",
    statement="loss = -np.sum(np.log(prob[np.arange(len(y), y])) / len(y); self.grad[np.arange(len(y), y] -= 1; "
    "separate layer: def __init__(self): (empty body); self.output = x_xep / np.sum(x_exp, axis=1, "
    "keep_dims=True); §3 Linear: def backward(self, grad): dx = einsum(prev_grad, ...)",
    verdict=WRONG,
    corrected="np.arange(len(y)), y] (the bracket closes after len(y)): as printed the class is a SyntaxError; the "
    "separate layer needs a body for __init__ (IndentationError as printed), x_exp and keepdims "
    "(NameError, TypeError); §3 Linear.backward reads prev_grad, which is not defined (its parameter is "
    "grad): NameError; corrected, §2 computes the CS231n-style softmax_loss and §3 returns dx = grad w^T",
)
def test_layers001(
    seed=(LAYERS001_PRINTED, SOFTMAX_LAYER001_PRINTED, LINEAR001_PRINTED),
    corrected=(LAYERS001_RIGHT, SOFTMAX_LAYER001_RIGHT, LINEAR001_RIGHT),
):
    r"""**numpy-layers post, the softmax code as printed.**

    > ``loss = -np.sum(np.log(prob[np.arange(len(y), y])) / len(y)``; ``self.grad[np.arange(len(y), y] -= 1``;
    > separate layer: ``def __init__(self):`` followed by an empty line, then ``def forward(self, x):``,
    > ``x_exp = np.exp(x)``, ``self.output = x_xep / np.sum(x_exp, axis=1, keep_dims=True)``;
    > §3 ``Linear``: ``def backward(self, grad):`` ``dx = einsum(prev_grad, rearrange(self.w, 'w1 w2 -> w2 w1'), 'c1 b, b c2 -> c1 c2')``.

    Derivation. ``prob[np.arange(len(y), y]`` closes the subscript ``[`` with ``]`` while ``np.arange(`` is still
    open: a ``SyntaxError``, so the §2 class (the post's main loss layer) does not even compile. The
    separate layer's ``__init__`` has no statement (``IndentationError``); after that, ``x_xep`` is undefined
    and ``np.sum`` has no ``keep_dims``. §3's ``Linear.backward`` takes ``grad`` and reads ``prev_grad``
    (``NameError`` on the first call). With ``np.arange(len(y)), y]`` the §2 code is the batch softmax loss
    and gradient of proof ``softmax.loss_code_batch``. (The same post's complete training code in §5 writes
    ``range(len(y)), y]`` and runs.)

    Verdict: **wrong** (code that does not run as printed). Check: compiling the printed §2 class raises
    ``SyntaxError`` and the printed layer ``IndentationError``; the corrected §2 class returns the loss and
    gradient of ``softmax_loss``; the corrected layer's output rows sum to 1; the printed ``Linear.backward``
    raises ``NameError`` (with the post's two einops calls restated for 2-D arrays) and the corrected one
    returns ``grad w^T`` with the weights before the update.
    """
    env = {"np": np}
    assert _error_of(seed[0], env) is SyntaxError, "the printed §2 class should not compile"
    assert _error_of(seed[1], env) is IndentationError, "the printed separate layer should not compile"
    x = np.array([[1.0, 1.0, 1.0, 2.0], [2.0, 2.0, 2.0, 3.0], [3.0, 3.0, 3.0, 5.0]])
    y = np.array([2, 0, 1])
    layer = _run(corrected[0], env)["Softmax"](4)
    prob, loss = layer.forward(x, y)
    e = np.exp(x - x.max(1, keepdims=True))
    p = e / e.sum(1, keepdims=True)
    assert abs(loss + np.mean(np.log(p[np.arange(3), y]))) < 1e-12
    assert_close("grad", layer.backward(), (p - np.eye(4)[y]) / 3)
    out = _run(corrected[1], env)["Softmax"]().forward(x)
    assert_close("separate layer: rows sum to 1", out.sum(1), np.ones(3))
    lin_env = {"np": np, **EINOPS_2D}
    g = np.array([[0.5, -1.0], [0.2, 0.3], [1.0, 0.0]])
    printed = _run(seed[2], lin_env)["Linear"](4, 2, 0.1)
    printed.forward(x)
    assert _raises_on_call(NameError, lambda: printed.backward(g)), "the printed backward should raise NameError"
    layer = _run(corrected[2], lin_env)["Linear"](4, 2, 0.1)
    layer.forward(x)
    w_before = layer.w.copy()
    assert_close("dx = grad w^T", layer.backward(g), g @ w_before.T)


# The CS231n walkthrough's Solver docstring example (FullyConnectedNet's printed signature, restated
# with its parameters and no body, which is all a call needs to bind its arguments):
SOLVER_EXAMPLE004_PRINTED = "model = FullyConnectedNet(hidden_size=100, reg=10)"
SOLVER_EXAMPLE004_RIGHT = "model = FullyConnectedNet(hidden_dims=[100], reg=10)"
FCNET004_SIGNATURE = """
class FullyConnectedNet(object):
    def __init__(self, hidden_dims, input_dim=3*32*32, num_classes=10, dropout=0, use_batchnorm=False,
                 reg=0.0, weight_scale=1e-2, dtype=None, seed=None):
        self.hidden_dims, self.reg = hidden_dims, reg
"""


@proof(
    id="code.solver_example004",
    seed="004",
    location="§6.2 Solver docstring, the usage example",
    statement="model = FullyConnectedNet(hidden_size=100, reg=10) # 我们的神经网络模型",
    verdict=WRONG,
    corrected="FullyConnectedNet (§5.4) takes hidden_dims, a list of hidden-layer widths, and has no hidden_size: "
    "the printed call raises TypeError; FullyConnectedNet(hidden_dims=[100], reg=10) builds the "
    "one-hidden-layer net meant (hidden_size is TwoLayerNet's parameter in the original assignment)",
)
def test_solver_example004(seed=SOLVER_EXAMPLE004_PRINTED, corrected=SOLVER_EXAMPLE004_RIGHT):
    r"""**CS231n walkthrough, the ``Solver`` docstring's example model.**

    > ``model = FullyConnectedNet(hidden_size=100, reg=10) # 我们的神经网络模型``; §5.4:
    > ``def __init__(self ,hidden_dims ,input_dim=3*32*32 ,num_classes=10 ,dropout=0 ,use_batchnorm=False ,reg=0.0
    > ,weight_scale=1e-2 ,dtype=np.float64 ,seed=None)``.

    Derivation. Python binds keyword arguments by name: ``hidden_size`` matches no parameter of the §5.4
    ``__init__`` (``TypeError: unexpected keyword argument``), and the required ``hidden_dims`` is missing.

    Verdict: **wrong** (code that does not run as printed). Check: the printed call against the printed
    signature raises ``TypeError``; the corrected call binds ``hidden_dims=[100]`` and ``reg=10``.
    """
    env = _run(FCNET004_SIGNATURE, {})
    assert _error_of(seed, env) is TypeError
    model = _run(corrected, env)["model"]
    assert model.hidden_dims == [100] and model.reg == 10
