"""Tests of aebench.data: readers of every official format, preprocessing, errors, embedded subset, download, CLI.

All files are generated small in tmp_path; nothing touches the network (urlopen is replaced by local bytes).
"""

from __future__ import annotations

import gzip
import hashlib
import io
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import aebench.data.download as dl
import aebench.data.paths as data_paths
from aebench.data import (
    DATASETS,
    DataError,
    DatasetInfo,
    ImageDataset,
    clear_cache,
    dataset_info,
    load_dataset,
    missing_files_message,
)
from aebench.registry import UnknownNameError

FMNIST_SYSTEM = Path("/usr/share/datasets/fashion-mnist")

from tests.helpers import idx_bytes, write_idx  # noqa: E402


# ----------------------------------------------------------------------------------------------------------- helpers
def pil_resize(img: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    return np.asarray(Image.fromarray(img).resize(size, Image.BILINEAR))


@pytest.fixture(autouse=True)
def _isolated(monkeypatch, tmp_path):
    """No test sees the user's data root, the system Fashion-MNIST, or another test's cached tensors."""
    monkeypatch.setenv("AEBENCH_DATA", str(tmp_path / "default_root"))
    monkeypatch.setattr(data_paths, "SYSTEM_DIRS", {})
    monkeypatch.setattr("aebench.data.celeba.FALLBACK_CACHE", tmp_path / "fallback_cache")
    clear_cache()
    yield
    clear_cache()


@pytest.fixture
def mnist_root(tmp_path) -> tuple[Path, dict[str, tuple[np.ndarray, np.ndarray]]]:
    """The train split as raw IDX, test as .gz, in <root>/mnist/."""
    rng = np.random.default_rng(0)
    arrays = {}
    for split, n, gz in (("train", 30, False), ("test", 20, True)):
        images = rng.integers(0, 256, size=(n, 28, 28), dtype=np.uint8)
        labels = np.arange(n, dtype=np.uint8) % 10
        write_idx(tmp_path / "root" / "mnist", split, images, labels, gz)
        arrays[split] = (images, labels)
    return tmp_path / "root", arrays


# ------------------------------------------------------------------------------------------------- registry / info
def test_registry_and_info():
    assert set(DATASETS) == {"mnist", "fashion_mnist", "fashion_mnist_mini", "svhn", "celeba"}
    expected = {"mnist": ((1, 32, 32), 10, 10, 10), "fashion_mnist": ((1, 32, 32), 10, 10, 10),
                "svhn": ((3, 32, 32), 10, 100, 10), "celeba": ((3, 64, 64), None, 64, 20)}
    for name, (shape, classes, d, k) in expected.items():
        info = dataset_info(name)
        assert isinstance(info, DatasetInfo)
        assert (info.image_shape, info.num_classes, info.latent_dim, info.num_components) == (shape, classes, d, k)
        assert info.license and info.description
    with pytest.raises(UnknownNameError, match="Did you mean 'mnist'"):
        dataset_info("mnits")
    with pytest.raises(UnknownNameError, match="fashion_mnist"):
        load_dataset("fashionmnist")
    assert issubclass(DataError, ValueError)


# ----------------------------------------------------------------------------------------------------------- IDX
def test_idx_raw_and_gz_resize(mnist_root):
    root, arrays = mnist_root
    for split in ("train", "test"):
        ds = load_dataset("mnist", split, data_root=root)
        images, labels = arrays[split]
        assert isinstance(ds, ImageDataset) and ds.split == split and len(ds) == len(images)
        assert ds.images.dtype == torch.uint8 and ds.images.shape == (len(images), 1, 32, 32)
        assert ds.labels.dtype == torch.int64 and ds.labels.tolist() == labels.tolist()
        for i in (0, len(images) - 1):
            np.testing.assert_array_equal(ds.images[i, 0].numpy(), pil_resize(images[i], (32, 32)))
        x = ds.batch(slice(0, 4))
        assert x.dtype == torch.float32 and x.shape == (4, 1, 32, 32)
        assert torch.equal(x, ds.images[:4].float() / 255) and 0 <= x.min() and x.max() <= 1
        assert ds.batch(torch.tensor([3, 1])).shape == (2, 1, 32, 32)


def test_idx_gz_equals_raw(tmp_path):
    rng = np.random.default_rng(1)
    images, labels = rng.integers(0, 256, (12, 28, 28), dtype=np.uint8), np.arange(12, dtype=np.uint8) % 10
    write_idx(tmp_path / "a" / "fashion_mnist", "test", images, labels, gz=False)
    write_idx(tmp_path / "b" / "fashion_mnist", "test", images, labels, gz=True)
    a = load_dataset("fashion_mnist", "test", tmp_path / "a")
    b = load_dataset("fashion_mnist", "test", tmp_path / "b")
    assert torch.equal(a.images, b.images) and torch.equal(a.labels, b.labels)


def test_in_process_cache(mnist_root):
    root, _ = mnist_root
    first = load_dataset("mnist", "train", root)
    start = time.perf_counter()
    second = load_dataset("mnist", "train", root)
    assert time.perf_counter() - start < 0.05
    assert second.images is first.images
    # A replaced file is read again (the cache key includes size and mtime).
    rng = np.random.default_rng(5)
    write_idx(root / "mnist", "train", rng.integers(0, 256, (7, 28, 28), dtype=np.uint8),
              np.zeros(7, dtype=np.uint8), gz=False)
    assert len(load_dataset("mnist", "train", root)) == 7


def test_env_var_and_root_itself(mnist_root, monkeypatch, tmp_path):
    root, _ = mnist_root
    monkeypatch.setenv("AEBENCH_DATA", str(root))
    assert len(load_dataset("mnist", "test")) == 20
    # Files directly in the root are found too.
    rng = np.random.default_rng(2)
    write_idx(tmp_path / "flat", "test", rng.integers(0, 256, (5, 28, 28), dtype=np.uint8),
              np.arange(5, dtype=np.uint8), gz=True)
    assert len(load_dataset("mnist", "test", tmp_path / "flat")) == 5


def _corrupt_idx(kind: str, folder: Path) -> str:
    """Write a test split with one defect; return the name of the file the error must name."""
    rng = np.random.default_rng(3)
    images, labels = rng.integers(0, 256, (10, 28, 28), dtype=np.uint8), np.arange(10, dtype=np.uint8)
    img_path, lbl_path = write_idx(folder, "test", images, labels, gz=kind == "truncated_gzip")
    if kind == "bad_magic":
        data = bytearray(img_path.read_bytes())
        data[2:4] = b"\x08\x01"  # says "labels" in an images file
        img_path.write_bytes(bytes(data))
        return img_path.name
    if kind == "truncated":
        img_path.write_bytes(img_path.read_bytes()[:-100])
        return img_path.name
    if kind == "too_long":
        lbl_path.write_bytes(lbl_path.read_bytes() + b"\x00")
        return lbl_path.name
    if kind == "truncated_gzip":
        img_path.write_bytes(img_path.read_bytes()[:200])
        return img_path.name
    if kind == "count_mismatch":
        lbl_path.write_bytes(idx_bytes(labels[:9]))
        return lbl_path.name
    if kind == "label_range":
        lbl_path.write_bytes(idx_bytes(np.full(10, 12, dtype=np.uint8)))
        return lbl_path.name
    if kind == "empty":
        img_path.write_bytes(b"")
        return img_path.name
    raise AssertionError(kind)


@pytest.mark.parametrize("kind", ["bad_magic", "truncated", "too_long", "truncated_gzip", "count_mismatch",
                                  "label_range", "empty"])
def test_idx_corrupt_files_raise(tmp_path, kind):
    bad_name = _corrupt_idx(kind, tmp_path / "mnist")
    with pytest.raises(DataError, match=bad_name.replace(".", r"\.")):
        load_dataset("mnist", "test", tmp_path)


def test_missing_files_lists_searched_paths(tmp_path):
    root = tmp_path / "nothing_here"
    with pytest.raises(DataError) as err:
        load_dataset("mnist", "train", root)
    text = str(err.value)
    for folder in (root / "mnist", root / "MNIST" / "raw", root):
        assert str(folder) in text
    assert "train-images-idx3-ubyte" in text and "aebench data download mnist" in text
    msg = missing_files_message("mnist", root)
    assert msg is not None and "t10k-images-idx3-ubyte" in msg
    assert "apt-get install dataset-fashion-mnist" in missing_files_message("fashion_mnist", root)
    assert missing_files_message("fashion_mnist_mini", root) is None


def test_partial_folder_is_reported_not_mixed(tmp_path, mnist_root):
    root, _ = mnist_root
    (root / "mnist" / "t10k-labels-idx1-ubyte.gz").unlink()
    with pytest.raises(DataError, match="lacks t10k-labels-idx1-ubyte"):
        load_dataset("mnist", "test", root)
    assert missing_files_message("mnist", root) is not None
    assert load_dataset("mnist", "train", root) is not None


def test_unknown_split(mnist_root):
    root, _ = mnist_root
    with pytest.raises(DataError, match="train, test"):
        load_dataset("mnist", "valid", root)


def test_present_files_message_none(mnist_root):
    root, _ = mnist_root
    assert missing_files_message("mnist", root) is None


# ---------------------------------------------------------------------------------------------------------- SVHN
def write_svhn(folder: Path, split: str, n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    import scipy.io

    rng = np.random.default_rng(seed)
    x = rng.integers(0, 256, (32, 32, 3, n), dtype=np.uint8)
    y = (np.arange(n) % 10 + 1).astype(np.uint8).reshape(n, 1)  # 1..10, 10 means digit 0
    folder.mkdir(parents=True, exist_ok=True)
    scipy.io.savemat(folder / f"{split}_32x32.mat", {"X": x, "y": y})
    return x, y


def test_svhn_layout_and_labels(tmp_path):
    x, y = write_svhn(tmp_path / "svhn", "test", 25)
    ds = load_dataset("svhn", "test", tmp_path)
    assert ds.images.shape == (25, 3, 32, 32) and ds.images.dtype == torch.uint8
    for i in (0, 7, 24):
        np.testing.assert_array_equal(ds.images[i].permute(1, 2, 0).numpy(), x[:, :, :, i])
    assert ds.labels.dtype == torch.int64
    assert ds.labels.tolist() == [int(v) % 10 for v in y.ravel()]
    assert ds.labels[9].item() == 0 and y[9, 0] == 10  # 10 -> digit 0
    assert set(ds.labels.tolist()) == set(range(10))


@pytest.mark.parametrize("kind", ["garbage", "truncated", "no_y", "count_mismatch", "bad_shape"])
def test_svhn_corrupt_raises(tmp_path, kind):
    import scipy.io

    folder = tmp_path / "svhn"
    write_svhn(folder, "train", 10)
    path = folder / "train_32x32.mat"
    x = np.zeros((32, 32, 3, 10), np.uint8)
    if kind == "garbage":
        path.write_bytes(b"this is not a mat file" * 10)
    elif kind == "truncated":
        path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    elif kind == "no_y":
        scipy.io.savemat(path, {"X": x})
    elif kind == "count_mismatch":
        scipy.io.savemat(path, {"X": x, "y": np.ones((9, 1), np.uint8)})
    elif kind == "bad_shape":
        scipy.io.savemat(path, {"X": np.zeros((10, 3, 32, 32), np.uint8), "y": np.ones((10, 1), np.uint8)})
    with pytest.raises(DataError, match="train_32x32.mat"):
        load_dataset("svhn", "train", tmp_path)


# -------------------------------------------------------------------------------------------------------- CelebA
def make_celeba(folder: Path, partition: list[int]) -> list[str]:
    """JPEGs of 178x218 (smooth gradients plus noise, so the crop position matters) and a partition file."""
    rng = np.random.default_rng(4)
    (folder / "img_align_celeba").mkdir(parents=True)
    names = []
    yy, xx = np.mgrid[0:218, 0:178]
    for i, _ in enumerate(partition, start=1):
        base = np.stack([xx * 255 // 177, yy * 255 // 217, (xx + yy + 40 * i) % 256], axis=-1)
        img = np.clip(base + rng.integers(-20, 20, base.shape), 0, 255).astype(np.uint8)
        name = f"{i:06d}.jpg"
        Image.fromarray(img).save(folder / "img_align_celeba" / name, quality=95)
        names.append(name)
    lines = [f"{n} {p}\n" for n, p in zip(names, partition, strict=True)]
    (folder / "list_eval_partition.txt").write_text("".join(lines))
    return names


def reference_crop(path: Path) -> np.ndarray:
    """Independent computation: (178-140)/2 = 19 px from the left, (218-140)/2 = 39 px from the top."""
    img = Image.open(path).convert("RGB")
    return np.asarray(img.crop((19, 39, 159, 179)).resize((64, 64), Image.BILINEAR)).transpose(2, 0, 1)


def test_celeba_crop_resize_splits_and_cache(tmp_path):
    folder = tmp_path / "celeba"
    names = make_celeba(folder, [0, 0, 0, 1, 2, 2])
    test = load_dataset("celeba", "test", tmp_path)
    assert test.images.shape == (2, 3, 64, 64) and test.images.dtype == torch.uint8 and test.labels is None
    for i, name in enumerate(names[4:]):
        np.testing.assert_array_equal(test.images[i].numpy(), reference_crop(folder / "img_align_celeba" / name))
    assert len(load_dataset("celeba", "train", tmp_path)) == 3
    assert len(load_dataset("celeba", "valid", tmp_path)) == 1
    assert test.batch(slice(None)).shape == (2, 3, 64, 64)
    caches = sorted(p.name for p in folder.glob("celeba_*.npy"))
    assert len(caches) == 3 and not list(folder.glob(".*tmp"))
    # The .npy cache is used on the next load: it still works with the JPEGs gone.
    clear_cache()
    for name in names:
        (folder / "img_align_celeba" / name).unlink()
    assert torch.equal(load_dataset("celeba", "test", tmp_path).images, test.images)


def test_celeba_corrupt_jpeg_names_file(tmp_path):
    folder = tmp_path / "celeba"
    names = make_celeba(folder, [2, 2, 2])
    bad = folder / "img_align_celeba" / names[1]
    bad.write_bytes(bad.read_bytes()[:300])
    with pytest.raises(DataError, match=names[1]):
        load_dataset("celeba", "test", tmp_path)
    assert not list(folder.glob("celeba_*.npy"))  # nothing cached from a failed conversion


def test_celeba_missing_jpeg_and_bad_partition(tmp_path):
    folder = tmp_path / "celeba"
    names = make_celeba(folder, [0, 2])
    (folder / "img_align_celeba" / names[1]).unlink()
    with pytest.raises(DataError, match=f"{names[1]}.*does not exist"):
        load_dataset("celeba", "test", tmp_path)
    (folder / "list_eval_partition.txt").write_text("000001.jpg 0\n000002.jpg seven\n")
    with pytest.raises(DataError, match=r"list_eval_partition.txt:2"):
        load_dataset("celeba", "train", tmp_path)


def test_celeba_missing_folder(tmp_path):
    with pytest.raises(DataError, match="img_align_celeba") as err:
        load_dataset("celeba", "test", tmp_path)
    assert "mmlab.ie.cuhk.edu.hk" in str(err.value) and str(tmp_path / "celeba") in str(err.value)


# ------------------------------------------------------------------------------------------ embedded mini subset
def test_mini_balanced_and_sized():
    train = load_dataset("fashion_mnist_mini", "train")
    test = load_dataset("fashion_mnist_mini", "test")
    assert len(train) >= 5000 and len(test) >= 1000
    for ds in (train, test):
        assert ds.images.shape[1:] == (1, 32, 32) and ds.images.dtype == torch.uint8
        counts = torch.bincount(ds.labels, minlength=10)
        assert len(counts) == 10 and (counts == counts[0]).all()
        assert ds.images.float().std() > 20  # real images, not zeros
    from aebench.data.loaders import mini_path

    with np.load(mini_path()) as npz:
        assert "MIT" in str(npz["license"]) and "Zalando" in str(npz["license"])
        assert npz["train_images"].shape[1:] == (28, 28)


@pytest.mark.skipif(not FMNIST_SYSTEM.is_dir(), reason="Debian package dataset-fashion-mnist not installed")
def test_real_fashion_mnist_and_mini_consistency(monkeypatch):
    monkeypatch.setattr(data_paths, "SYSTEM_DIRS", {"fashion_mnist": (FMNIST_SYSTEM,)})
    test = load_dataset("fashion_mnist", "test")
    assert test.images.shape == (10000, 1, 32, 32)
    assert torch.bincount(test.labels).tolist() == [1000] * 10
    # The mini test split is the first 100 images per class of the official test file, resized the same way.
    mini = load_dataset("fashion_mnist_mini", "test")
    keep = torch.cat([torch.nonzero(test.labels == c).ravel()[:100] for c in range(10)]).sort().values
    assert torch.equal(mini.images, test.images[keep]) and torch.equal(mini.labels, test.labels[keep])


# ------------------------------------------------------------------------------------------------------ download
class FakeResponse(io.BytesIO):
    def __init__(self, data: bytes) -> None:
        super().__init__(data)
        self.headers = {"Content-Length": str(len(data))}


def _fake_remote(monkeypatch, contents: dict[str, bytes], md5s: dict[str, str] | None = None,
                 fail: set[str] = frozenset()) -> list[str]:
    """Serve ``contents`` (filename -> gz bytes) from two fake mirrors; hosts in ``fail`` raise URLError."""
    from urllib.error import URLError

    calls: list[str] = []

    def fake_urlopen(request, timeout=None):
        url = request.full_url
        calls.append(url)
        if any(host in url for host in fail):
            raise URLError("Name or service not known")
        return FakeResponse(contents[url.rsplit("/", 1)[1]])

    files = tuple(
        dl.RemoteFile(name, (md5s or {}).get(name) or hashlib.md5(gzip.decompress(data)).hexdigest(),
                      (f"http://mirror-a.invalid/{name}", f"http://mirror-b.invalid/{name}"))
        for name, data in contents.items()
    )
    monkeypatch.setattr(dl, "urlopen", fake_urlopen)
    monkeypatch.setitem(dl.REMOTE_FILES, "mnist", files)
    return calls


def _mnist_gz_files() -> dict[str, bytes]:
    rng = np.random.default_rng(6)
    images, labels = rng.integers(0, 256, (8, 28, 28), dtype=np.uint8), np.arange(8, dtype=np.uint8)
    out = {}
    for prefix in ("train", "t10k"):
        out[f"{prefix}-images-idx3-ubyte.gz"] = gzip.compress(idx_bytes(images), mtime=0)
        out[f"{prefix}-labels-idx1-ubyte.gz"] = gzip.compress(idx_bytes(labels), mtime=0)
    return out


def test_download_verifies_and_loads(monkeypatch, tmp_path):
    contents = _mnist_gz_files()
    calls = _fake_remote(monkeypatch, contents, fail={"mirror-a"})
    paths = dl.download("mnist", tmp_path, quiet=True)
    assert [p.name for p in paths] == list(contents)
    assert all(p.parent == tmp_path / "mnist" and p.read_bytes() == contents[p.name] for p in paths)
    assert not list((tmp_path / "mnist").glob(".*part"))
    assert any("mirror-b" in c for c in calls)  # fell back to the second mirror
    assert len(load_dataset("mnist", "train", tmp_path)) == 8
    # Valid files already present are not fetched again.
    calls.clear()
    dl.download("mnist", tmp_path, quiet=True)
    assert calls == []


def test_download_checksum_mismatch(monkeypatch, tmp_path):
    contents = _mnist_gz_files()
    md5s = {"train-images-idx3-ubyte.gz": "0" * 32}
    _fake_remote(monkeypatch, contents, md5s=md5s)
    with pytest.raises(DataError, match="checksum does not match") as err:
        dl.download("mnist", tmp_path, quiet=True)
    assert "0" * 32 in str(err.value) and hashlib.md5(
        gzip.decompress(contents["train-images-idx3-ubyte.gz"])).hexdigest() in str(err.value)
    assert not (tmp_path / "mnist" / "train-images-idx3-ubyte.gz").exists()
    assert not list((tmp_path / "mnist").glob(".*part"))


def test_download_network_error_and_manual_datasets(monkeypatch, tmp_path):
    _fake_remote(monkeypatch, _mnist_gz_files(), fail={"mirror-a", "mirror-b"})
    with pytest.raises(DataError, match="(?s)Could not download.*mirror-a.*mirror-b") as err:
        dl.download("mnist", tmp_path, quiet=True)
    assert "Name or service not known" in str(err.value)
    with pytest.raises(DataError, match="img_align_celeba"):
        dl.download("celeba", tmp_path)
    assert dl.download("fashion_mnist_mini", tmp_path)[0].name == "fashion_mnist_mini.npz"


def test_checksum_table_matches_system_fashion_mnist():
    if not FMNIST_SYSTEM.is_dir():
        pytest.skip("Debian package dataset-fashion-mnist not installed")
    for remote in dl.REMOTE_FILES["fashion_mnist"]:
        assert dl.verify_file(FMNIST_SYSTEM / remote.filename, remote.md5), remote.filename


# ----------------------------------------------------------------------------------------------------------- CLI
def test_cli_ls_info_download(mnist_root, monkeypatch):
    from typer.testing import CliRunner

    from aebench.data.cli import app

    root, _ = mnist_root
    runner = CliRunner()
    result = runner.invoke(app, ["ls", "--data-root", str(root)])
    assert result.exit_code == 0, result.output
    assert "svhn" in result.output and "missing" in result.output and "fashion_mnist_mini" in result.output
    result = runner.invoke(app, ["info", "svhn", "--data-root", str(root)])
    assert result.exit_code == 0 and "train_32x32.mat" in result.output
    result = runner.invoke(app, ["download", "celeba", "--data-root", str(root)])
    assert result.exit_code == 1
    _fake_remote(monkeypatch, _mnist_gz_files())
    result = runner.invoke(app, ["download", "mnist", "--data-root", str(root / "new")])
    assert result.exit_code == 0, result.output
    assert (root / "new" / "mnist" / "t10k-labels-idx1-ubyte.gz").is_file()
