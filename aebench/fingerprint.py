"""Code fingerprints: which version of the code produced a trained model or a measurement.

A cached checkpoint or a finished measurement is reused only when its fingerprint equals the current one, so a
change to a loss, the training loop or an attack retrains and re-evaluates instead of returning numbers of the old
code. The rule:

- a fingerprint is the SHA-256 of the aebench version and of the *syntax trees* of a fixed set of source files, with
  docstrings removed: comments, docstrings and formatting do not count, any change to what the code does does;
- **training** covers the files of the model's class and of every class it inherits from (also for a third-party
  model), every aebench module those files import (followed through imports, so a model built from the GMM prior
  and the FGSM step covers them, and a change to an unrelated network does not retrain it), the training loop, the
  recipe types and the data readers;
- each **measurement** kind covers the code that computes it (see :data:`MEASUREMENT_CODE`): attacks and metrics for
  an attack, the fidelity package for fidelity, the latent classifier and the attacks for downstream accuracy, plus
  the sampling protocol for all of them. The model a measurement evaluates is covered through the training key
  (or, for a loaded checkpoint, its SHA-256), and every row records the digest of the weights it measured
  (``aebench.checkpoint.weights_digest``): a checkpoint replaced under the same key (retrained with another thread
  count, restored from elsewhere) makes the runner compute the cell's measurements again.

A refactor that moves code between files changes a fingerprint too: that is deliberate, since "it only moved" is
exactly the claim a benchmark must not take on trust. ``aebench run --reuse-stale`` keeps old work explicitly, and
rows record that it did.
"""

from __future__ import annotations

import ast
import functools
import hashlib
import inspect
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent


def _package_version() -> str:
    try:
        return version("aebench")
    except PackageNotFoundError:  # run from a source tree that was never installed
        return "unknown"

TRAINING_CODE = ("training.py", "recipes.py", "data/dataset.py", "data/loaders.py", "data/idx.py", "data/svhn.py",
                 "data/celeba.py", "data/transforms.py")
"""Files of the package that decide what a training run produces, beside the model's own files and their imports."""

MEASUREMENT_CODE: dict[str, tuple[str, ...]] = {
    "reconstruction": ("metrics", "sampling.py", "runner/measure.py"),
    "attack": ("attacks", "metrics", "sampling.py", "runner/measure.py"),
    "fidelity": ("fidelity", "sampling.py", "runner/measure.py"),
    "downstream": ("downstream.py", "attacks", "sampling.py", "runner/measure.py"),
}
"""Files (or folders) of the package that decide each kind of measurement."""


def _strip_docstrings(tree: ast.AST) -> ast.AST:
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
            body = node.body
            if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant) \
                    and isinstance(body[0].value.value, str):
                node.body = body[1:] or [ast.Pass()]
    return tree


@functools.lru_cache(maxsize=256)
def _file_digest(path: str, mtime_ns: int) -> str:
    del mtime_ns  # cache key only: an edited file is parsed again
    source = Path(path).read_text(encoding="utf-8")
    try:
        text = ast.dump(_strip_docstrings(ast.parse(source)), include_attributes=False)
    except SyntaxError:
        text = source
    return hashlib.sha256(text.encode()).hexdigest()


def _expand(entries: tuple[str, ...]) -> list[Path]:
    files: list[Path] = []
    for entry in entries:
        path = PACKAGE / entry
        files += sorted(path.rglob("*.py")) if path.is_dir() else [path]
    return files


def fingerprint_files(files: list[Path]) -> str:
    """Short hash of the aebench version and the docstring-free syntax trees of ``files`` (order does not matter)."""
    digest = hashlib.sha256(f"aebench {_package_version()}".encode())
    for path in sorted(set(files)):
        name = path.relative_to(PACKAGE).as_posix() if path.is_relative_to(PACKAGE) else path.name
        digest.update(f"{name}:{_file_digest(str(path), path.stat().st_mtime_ns)};".encode())
    return digest.hexdigest()[:16]


def model_files(cls: type) -> list[Path]:
    """Source files of a model class and of every class it inherits from, torch and the standard library excluded."""
    files = []
    for klass in inspect.getmro(cls):
        module = klass.__module__.split(".")[0]
        if module in ("builtins", "abc", "torch", "typing"):
            continue
        try:
            files.append(Path(inspect.getsourcefile(klass) or "").resolve())
        except TypeError:  # defined interactively: nothing on disk to hash
            continue
    return [f for f in files if f.is_file()]


def _module_file(module: str) -> Path | None:
    """The file of an aebench module (``aebench.nn.fgsm`` → ``nn/fgsm.py``, a package → its ``__init__.py``)."""
    parts = module.split(".")[1:]
    base = PACKAGE.joinpath(*parts)
    if base.with_suffix(".py").is_file():
        return base.with_suffix(".py")
    if (base / "__init__.py").is_file():
        return base / "__init__.py"
    return None


def _origin(module: str, name: str, seen: frozenset[str] = frozenset()) -> Path | None:
    """The file that defines ``name`` imported from ``module``: a submodule, or what a package re-exports."""
    sub = _module_file(f"{module}.{name}")
    if sub is not None:
        return sub
    path = _module_file(module)
    if path is None or path.name != "__init__.py" or module in seen:
        return path
    # A package's __init__ re-exports names from its modules: follow the one that defines ``name``.
    for node in ast.parse(path.read_text(encoding="utf-8")).body:
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("aebench"):
            if any((alias.asname or alias.name) == name for alias in node.names):
                return _origin(node.module, name, seen | {module})
    return path


def _imported_files(path: Path) -> set[Path]:
    """The aebench files that ``path`` imports (anywhere in it, deferred imports included)."""
    found: set[Path] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "aebench":
            for alias in node.names:
                origin = _origin(node.module, alias.name)
                if origin is not None:
                    found.add(origin)
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] == "aebench":
                    origin = _module_file(alias.name)
                    if origin is not None:
                        found.add(origin)
    return found


def import_closure(files: list[Path]) -> list[Path]:
    """``files`` and every aebench file they import, directly or through others."""
    todo, seen = list(files), set(files)
    while todo:
        for dependency in _imported_files(todo.pop()) - seen:
            seen.add(dependency)
            todo.append(dependency)
    return sorted(seen)


def training_fingerprint(model_cls: type) -> str:
    """Fingerprint of the code that trains ``model_cls`` (see the module docstring)."""
    return fingerprint_files(_expand(TRAINING_CODE) + import_closure(model_files(model_cls)))


def measurement_fingerprint(kind: str) -> str:
    """Fingerprint of the code behind one kind of measurement (a key of :data:`MEASUREMENT_CODE`).

    Raises:
        KeyError: For an unknown kind.
    """
    return fingerprint_files(_expand(MEASUREMENT_CODE[kind]))
