import sys
from pathlib import Path

import torch

# Tests import their helpers as ``tests.helpers``; make the repository root importable.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
torch.set_num_threads(min(2, torch.get_num_threads()))
