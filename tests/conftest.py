import os

import hypothesis  # noqa: F401 - imported before any sweep runs gc.freeze(): see below
import pytest
import torch

# A sweep run in-process calls gc.freeze(); a plugin of hypothesis imported after it (trio's, which
# selenium brings) finds no referrers of its PRNG in the frozen heap and warns, an error under
# filterwarnings = error at the end of the session. Importing hypothesis first registers it before.

# No load sampling in the tests (measure.load): the other work on a shared machine would otherwise add
# "disturbed" warnings to the output they check. Tests of the load set it themselves.
os.environ["SEQBENCH_LOAD_WINDOW"] = "off"
# The console's width is what a non-terminal run gets (140 columns, seqbench.render.console) unless COLUMNS
# is set; pytest-xdist's workers inherit COLUMNS=80, and a user's shell may export one: the tests that read
# wrapped output assume neither.
os.environ.pop("COLUMNS", None)

from seqbench.kernels import KERNELS


def pytest_collection_modifyitems(config, items):
    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs CUDA")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)


@pytest.fixture
def tiny_cfg_data():
    """A config mapping for sweeps that finish in well under a second."""
    return {
        "name": "tiny",
        "kernels": ["rnn_loop", "sdpa"],
        "seq_lens": [4, 8],
        "batch_sizes": [2],
        "hidden_size": 16,
        "num_heads": 2,
        "min_time": 0.002,
        "min_repeats": 3,
        "max_warmup": 0.01,
    }


ALL_KERNELS = sorted(KERNELS)
