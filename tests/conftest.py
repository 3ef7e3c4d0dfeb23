import sys
from pathlib import Path

import torch

# Tests import their helpers as ``tests.helpers``; make the repository root importable.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
# Tiny test models run fastest single-threaded, and it keeps timings stable on a shared 2-core machine.
torch.set_num_threads(1)
