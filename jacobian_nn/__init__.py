"""jacobian_nn: fully connected networks with explicit Jacobian matrices.

Conventions (the FCNN-Jacobian notes'): a sample is a column ``(n, 1)``; a dense layer is
``y = f(W^T x + b)`` with ``W`` ``(n, m)``; loss gradients are rows ``(1, k)``;
Jacobians are ``(m, n)`` in numerator layout; the chain rule runs left to right,
``dL/dx = dL/dy @ J``. The batched path works on ``X`` ``(N, n)`` with the same
``W`` and ``b``: ``Z = X W + b``.
"""

from .activations import (
    ACTIVATIONS,
    ELU,
    Activation,
    Identity,
    LeakyReLU,
    ReLU,
    Sigmoid,
    Softmax,
    Step,
    Tanh,
    get_activation,
)
from .fd import compare, fd_gradient, fd_jacobian
from .layers import Dense, Layer, init_weights
from .graph import Add, Mul
from .layernorm import LayerNorm
from .losses import (
    LOSSES,
    BinaryCrossEntropy,
    CrossEntropy,
    Loss,
    MeanSquaredError,
    MulticlassSVM,
    SigmoidBinaryCrossEntropy,
    SoftmaxCrossEntropy,
    get_loss,
)
from .network import Network
from .batched import Workspace, input_jacobian_batched, per_sample_gradients_batched, per_sample_losses_batched
from .crosscheck import CrossCheckReport, cross_check
from .check import (
    CheckReport,
    Tolerance,
    check_batch_jacobian,
    check_batch_vjp,
    check_jacobian,
    check_loss,
    check_vjp,
    from_cs231n,
    from_cs231n_loss,
)

# Training, data, models, batch norm / dropout (numpy and scipy only: matplotlib, tqdm and scikit-learn,
# the optional extras, are imported inside the functions that need them, never here)
from . import data, metrics
from .data import Dataset
from .fcnet import FullyConnectedNet
from .conv import AvgPool2D, Conv2D, MaxPool2D, SpatialBatchNorm, build_cnn, col2im, im2col
from .metrics import accuracy, classification_report, confusion_matrix, precision_recall_f1
from .model_io import load_model, register_layer_type, save_model
from .normalization import (
    ActivationLayer,
    BatchNorm,
    Dropout,
    frozen_running_stats,
    sample_dropout_masks,
    same_randomness,
    using_dropout_masks,
)
from .optimizers import (
    OPTIMIZERS,
    AdaGrad,
    Adam,
    Momentum,
    Nesterov,
    Optimizer,
    OptimizerState,
    RMSprop,
    SGD,
    make_optimizer,
)
from .solver import History, IterationInfo, Solver, TrainingDiverged

__version__ = "0.1.0"

__all__ = [
    "ACTIVATIONS",
    "Activation",
    "Add",
    "Mul",
    "CrossEntropy",
    "Dense",
    "ELU",
    "LayerNorm",
    "Identity",
    "LOSSES",
    "Layer",
    "LeakyReLU",
    "Loss",
    "MeanSquaredError",
    "MulticlassSVM",
    "BinaryCrossEntropy",
    "SigmoidBinaryCrossEntropy",
    "Network",
    "ReLU",
    "Sigmoid",
    "Softmax",
    "SoftmaxCrossEntropy",
    "Step",
    "Tanh",
    "compare",
    "fd_gradient",
    "fd_jacobian",
    "get_activation",
    "get_loss",
    "init_weights",
    "CrossCheckReport",
    "cross_check",
    "input_jacobian_batched",
    "per_sample_gradients_batched",
    "per_sample_losses_batched",
    "Workspace",
    "CheckReport",
    "Tolerance",
    "check_jacobian",
    "check_vjp",
    "check_batch_jacobian",
    "check_batch_vjp",
    "from_cs231n",
    "check_loss",
    "from_cs231n_loss",
    "data",
    "metrics",
    "Dataset",
    "FullyConnectedNet",
    "accuracy",
    "classification_report",
    "confusion_matrix",
    "precision_recall_f1",
    "load_model",
    "register_layer_type",
    "save_model",
    "ActivationLayer",
    "BatchNorm",
    "Dropout",
    "frozen_running_stats",
    "sample_dropout_masks",
    "same_randomness",
    "using_dropout_masks",
    "OPTIMIZERS",
    "AdaGrad",
    "Adam",
    "Momentum",
    "Nesterov",
    "Optimizer",
    "OptimizerState",
    "RMSprop",
    "SGD",
    "make_optimizer",
    "History",
    "IterationInfo",
    "Solver",
    "TrainingDiverged",
    "AvgPool2D",
    "Conv2D",
    "MaxPool2D",
    "SpatialBatchNorm",
    "build_cnn",
    "col2im",
    "im2col",
]
