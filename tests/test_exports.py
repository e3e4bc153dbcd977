"""The package's public API is importable from ``jacobian_nn``, and ``import jacobian_nn`` touches
none of the optional extras (matplotlib, tqdm, scikit-learn)."""

import json
import subprocess
import sys
from pathlib import Path

import jacobian_nn

OPTIONAL = ("matplotlib", "tqdm", "sklearn")
ROOT = Path(__file__).resolve().parents[1]

# In a fresh interpreter: record every attempt to import an optional extra, import
# the package and use its lazily-importing parts' modules, then report what was attempted and loaded.
PROBE = f"""
import json, sys
OPTIONAL = {OPTIONAL!r}
attempts = []
class Recorder:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in OPTIONAL:
            attempts.append(name)
        return None
sys.meta_path.insert(0, Recorder())
import jacobian_nn
from jacobian_nn import solver, train_cli, plots, data, cli  # modules that import an extra lazily
print(json.dumps({{"attempts": attempts, "loaded": sorted(m for m in sys.modules if m.split(".")[0] in OPTIONAL)}}))
"""


def test_import_does_not_import_optional_extras():
    out = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True, cwd=ROOT, check=True)
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result == {"attempts": [], "loaded": []}


def test_the_probe_can_see_an_import_of_an_extra():
    # the same probe notices a module-level import of an extra (here made on purpose)
    probe = PROBE.replace(
        "import jacobian_nn\n", "import jacobian_nn\ntry:\n    import tqdm\nexcept ImportError:\n    pass\n", 1
    )
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, cwd=ROOT, check=True)
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result["attempts"][0] == "tqdm"  # seen whether or not tqdm is installed


def test_public_api_of_training_and_layers_is_exported():
    names = {
        "Solver",
        "History",
        "IterationInfo",
        "Optimizer",
        "SGD",
        "Momentum",
        "Nesterov",
        "AdaGrad",
        "RMSprop",
        "Adam",
        "make_optimizer",
        "OPTIMIZERS",
        "data",
        "metrics",
        "Dataset",
        "save_model",
        "load_model",
        "register_layer_type",
        "accuracy",
        "confusion_matrix",
        "precision_recall_f1",
        "classification_report",
        "BatchNorm",
        "Dropout",
        "ActivationLayer",
        "FullyConnectedNet",
        "same_randomness",
        "frozen_running_stats",
        "using_dropout_masks",
        "sample_dropout_masks",
    }
    assert names <= set(jacobian_nn.__all__)
    assert all(hasattr(jacobian_nn, n) for n in jacobian_nn.__all__)
    assert callable(jacobian_nn.data.spiral) and jacobian_nn.data.__name__ == "jacobian_nn.data"
    from jacobian_nn.solver import Solver

    assert jacobian_nn.Solver is Solver
