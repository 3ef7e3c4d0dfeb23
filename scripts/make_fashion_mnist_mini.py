"""Build ``aebench/data/embedded/fashion_mnist_mini.npz``: a small, balanced, real Fashion-MNIST subset.

Selection is deterministic without any random seed: the **first 600 images of each class** of the official
training file (6,000 images) and the **first 100 of each class** of the official test file (1,000 images), kept
in their original file order. Images are stored at their native 28×28 uint8 (the loader resizes them to 32×32
exactly like the full dataset) and the file is saved with ``np.savez_compressed`` (about 3 MB).

Fashion-MNIST is Copyright (c) 2017 Zalando SE and released under the MIT license; the license text and the source
are stored inside the npz (keys ``license``, ``source``, ``selection``, ``source_md5``).

Usage:
    python scripts/make_fashion_mnist_mini.py [--source /usr/share/datasets/fashion-mnist] [--out PATH]
"""

from __future__ import annotations

import argparse
import hashlib
from pathlib import Path

import numpy as np

from aebench.data.idx import read_bytes, read_idx_pair

TRAIN_PER_CLASS = 600
TEST_PER_CLASS = 100
FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}
MIT_LICENSE = """The MIT License (MIT) Copyright (c) 2017 Zalando SE, https://tech.zalando.com

Permission is hereby granted, free of charge, to any person obtaining a copy of this software and associated
documentation files (the "Software"), to deal in the Software without restriction, including without limitation the
rights to use, copy, modify, merge, publish, distribute, sublicense, and/or sell copies of the Software, and to permit
persons to whom the Software is furnished to do so, subject to the following conditions:

The above copyright notice and this permission notice shall be included in all copies or substantial portions of the
Software.

THE SOFTWARE IS PROVIDED "AS IS", WITHOUT WARRANTY OF ANY KIND, EXPRESS OR IMPLIED, INCLUDING BUT NOT LIMITED TO THE
WARRANTIES OF MERCHANTABILITY, FITNESS FOR A PARTICULAR PURPOSE AND NONINFRINGEMENT. IN NO EVENT SHALL THE AUTHORS OR
COPYRIGHT HOLDERS BE LIABLE FOR ANY CLAIM, DAMAGES OR OTHER LIABILITY, WHETHER IN AN ACTION OF CONTRACT, TORT OR
OTHERWISE, ARISING FROM, OUT OF OR IN CONNECTION WITH THE SOFTWARE OR THE USE OR OTHER DEALINGS IN THE SOFTWARE."""


def _find(folder: Path, name: str) -> Path:
    for candidate in (folder / name, folder / (name + ".gz")):
        if candidate.is_file():
            return candidate
    raise SystemExit(f"{folder / name}[.gz] not found; install dataset-fashion-mnist or pass --source.")


def first_per_class(labels: np.ndarray, per_class: int) -> np.ndarray:
    """Indices of the first ``per_class`` images of every class, in file order."""
    picks = [np.flatnonzero(labels == c)[:per_class] for c in range(10)]
    if any(len(p) < per_class for p in picks):
        raise SystemExit(f"Some class has fewer than {per_class} images.")
    return np.sort(np.concatenate(picks))


def main() -> None:
    """Parse arguments, select the subset and write the npz."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--source", type=Path, default=Path("/usr/share/datasets/fashion-mnist"))
    parser.add_argument("--out", type=Path,
                        default=Path(__file__).resolve().parent.parent / "aebench/data/embedded/fashion_mnist_mini.npz")
    args = parser.parse_args()

    arrays: dict[str, np.ndarray] = {}
    md5s = []
    for split, per_class in (("train", TRAIN_PER_CLASS), ("test", TEST_PER_CLASS)):
        images_path, labels_path = (_find(args.source, f) for f in FILES[split])
        images, labels = read_idx_pair(images_path, labels_path)
        md5s += [f"{p.name}: {hashlib.md5(read_bytes(p)).hexdigest()} (decompressed)"
                 for p in (images_path, labels_path)]
        keep = first_per_class(labels, per_class)
        arrays[f"{split}_images"] = np.ascontiguousarray(images[keep])
        arrays[f"{split}_labels"] = labels[keep].astype(np.uint8)
    arrays["license"] = np.array(MIT_LICENSE)
    arrays["source"] = np.array("Fashion-MNIST (Xiao, Rasul and Vollgraf 2017), "
                                "https://github.com/zalandoresearch/fashion-mnist, official IDX files")
    arrays["selection"] = np.array(f"first {TRAIN_PER_CLASS} images per class of the training file, first "
                                   f"{TEST_PER_CLASS} per class of the t10k file, in file order; 28x28 uint8")
    arrays["source_md5"] = np.array("\n".join(md5s))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    tmp = args.out.with_name(args.out.name + ".tmp")
    with open(tmp, "wb") as fh:
        np.savez_compressed(fh, **arrays)
    tmp.replace(args.out)
    print(f"wrote {args.out} ({args.out.stat().st_size / 1e6:.2f} MB): "
          f"{len(arrays['train_images'])} train, {len(arrays['test_images'])} test images")


if __name__ == "__main__":
    main()
