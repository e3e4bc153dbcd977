"""Training plots (optional extra ``plot``: matplotlib): loss and accuracy curves, and for 2-D data
seed 003's decision boundary (argmax of the network output on a 101 x 101 grid spanning the data
plus a 0.1 margin)."""

from __future__ import annotations

import numpy as np


def require_matplotlib():
    """Import matplotlib with the non-interactive Agg backend, or raise ImportError saying how to get it."""
    try:
        import matplotlib
    except ImportError as exc:
        raise ImportError("plot: needs matplotlib, the optional extra 'plot': pip install 'jacobian-nn[plot]'") from exc
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def decision_grid(predict, X, steps: int = 101):
    """``(xx, yy, labels)`` for 2-D ``X`` ``(N, 2)``: the predicted class on a ``steps x steps`` grid
    over ``[min - 0.1, max + 0.1]`` per axis (seed 003). ``predict`` maps ``(M, 2)`` to outputs ``(M, K)``."""
    X = np.asarray(X)
    if X.ndim != 2 or X.shape[1] != 2:
        raise ValueError(f"X: expected 2-D data of shape (N, 2) for a decision boundary, got {X.shape}")
    x_min, x_max = X[:, 0].min() - 0.1, X[:, 0].max() + 0.1
    y_min, y_max = X[:, 1].min() - 0.1, X[:, 1].max() + 0.1
    xx, yy = np.meshgrid(np.linspace(x_min, x_max, steps), np.linspace(y_min, y_max, steps))
    out = predict(np.column_stack([xx.ravel(), yy.ravel()]).astype(X.dtype))
    return xx, yy, out.argmax(axis=1).reshape(xx.shape)


def plot_training(path, history, predict=None, dataset=None, title: str = "") -> str:
    """Save a PNG: loss per iteration and accuracy per epoch; plus the decision boundary on the
    training and test splits when ``dataset`` has 2 features and ``predict`` is given."""
    plt = require_matplotlib()
    two_d = dataset is not None and predict is not None and dataset.n_features == 2
    ncols = 4 if two_d else 2
    fig, axes = plt.subplots(1, ncols, figsize=(4.5 * ncols, 4))
    axes[0].plot(np.arange(1, len(history.loss) + 1), history.loss, lw=0.8)
    axes[0].set(title="minibatch loss", xlabel="iteration", ylabel="loss")
    epochs = np.arange(len(history.train_acc))
    axes[1].plot(epochs, history.train_acc, marker="o", ms=3, label="train")
    axes[1].plot(epochs, history.val_acc, marker="o", ms=3, label="validation")
    axes[1].axvline(history.best_epoch, color="gray", ls=":", label="restored")
    axes[1].set(title="accuracy", xlabel="epoch", ylabel="accuracy", ylim=(0, 1.02))
    axes[1].legend()
    if two_d:
        for ax, (name, X, y) in zip(
            axes[2:], (("train", dataset.X_train, dataset.y_train), ("test", dataset.X_test, dataset.y_test))
        ):
            xx, yy, labels = decision_grid(predict, X)
            ax.contourf(xx, yy, labels, cmap=plt.cm.Spectral, alpha=0.8)
            ax.scatter(X[:, 0], X[:, 1], c=y, s=15, cmap=plt.cm.RdYlBu, edgecolors="k", linewidths=0.3)
            ax.set(title=f"decision boundary ({name})", xlim=(xx.min(), xx.max()), ylim=(yy.min(), yy.max()))
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, format="png", dpi=100)
    plt.close(fig)
    return path
