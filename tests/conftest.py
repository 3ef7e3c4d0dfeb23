import sys
from pathlib import Path

import torch

# Tests import their helpers as ``tests.helpers``; make the repository root importable.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
# Tiny test models run fastest single-threaded, and it keeps timings stable on a shared 2-core machine.
torch.set_num_threads(1)


import pytest  # noqa: E402


@pytest.fixture(autouse=True)
def _one_thread_per_test():
    # `aebench run` sets torch's thread count (--threads); a CLI test run in-process must not change the thread
    # count of the tests after it, since float results depend on it.
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(1)
