"""bench/gpu/pack.py's selection of what travels to the GPU host, on a fake site folder
whose names are those pip really installs for Python 3.12 (empty files and folders)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.bench import ROOT, load_script

pack = load_script("gpu_pack", ROOT / "bench" / "gpu" / "pack.py")

#: What `pip install --target` left for PACKAGES on 2026-12-06 (after PRUNE; PyNvVideoCodec's
#: names added 2026-12-08).
SITE_DIRS = """
annotated_types annotated_types-0.8.0.dist-info audioread audioread-3.1.0.dist-info av
av-18.1.0.dist-info av.libs bidi bitsandbytes bitsandbytes-0.50.2.dist-info cffi
cffi-2.1.1.dist-info ctranslate2 ctranslate2-4.8.5.dist-info ctranslate2.libs decorator
decorator-5.3.2.dist-info easyocr easyocr-1.7.2.dist-info faster_whisper
faster_whisper-1.2.1.dist-info ftfy ftfy-6.3.1.dist-info google jsonschema
jsonschema-4.26.0.dist-info jsonschema_specifications
jsonschema_specifications-2025.9.1.dist-info librosa librosa-0.11.0.dist-info licensing
mediapipe mediapipe-0.10.21.dist-info mediapipe.libs onnxruntime onnxruntime-1.32.0.dist-info numpy numpy-1.26.4.dist-info numpy.libs
nvidia_pytriton-0.7.0.dist-info nvidia_pytriton.libs open_clip open_clip_torch-3.3.0.dist-info
open_clip_train openai_whisper-20250625.dist-info platformdirs platformdirs-4.14.9.dist-info
pooch pooch-1.9.0.dist-info prometheus_client prometheus_client-0.26.0.dist-info
protobuf-4.25.9.dist-info pyclipper pyclipper-1.4.0.dist-info pycparser
pycparser-3.12.dist-info pydantic pydantic-2.14.4.dist-info pydantic_core
pydantic_core-2.50.5.dist-info python_bidi-0.6.12.dist-info python_rapidjson-1.25.dist-info
pytriton rapidjson-stubs referencing referencing-0.37.0.dist-info rpds
rpds_py-2026.9.1.dist-info scipy scipy-1.17.1.dist-info scipy.libs shapely
shapely-2.2.0.dist-info shapely.libs soundfile-0.14.0.dist-info soxr soxr-1.1.0.dist-info thop
tritonclient tritonclient-2.51.0.dist-info tritonclientutils tritongrpcclient tritonhttpclient
tritonshmutils typing_inspection typing_inspection-0.4.5.dist-info ultralytics
ultralytics-8.4.190.dist-info ultralytics_thop-2.2.3.dist-info wcwidth wcwidth-0.9.5.dist-info
whisper _soundfile_data __pycache__ tiktoken tiktoken_ext tiktoken-0.14.0.dist-info
more_itertools more_itertools-11.2.1.dist-info numba numba-0.61.2.dist-info llvmlite
llvmlite-0.44.0.dist-info PyNvVideoCodec pynvvideocodec-2.2.4.dist-info pynvvideocodec.
""".split()
SITE_FILES = """
LICENSE.txt _cffi_backend.cpython-312-x86_64-linux-gnu.so _soundfile.py soundfile.py
rapidjson.cpython-312-x86_64-linux-gnu.so
""".split()


def fake_site(root: Path, drop: tuple[str, ...] = (), add: tuple[str, ...] = ()) -> Path:
    site = root / "site312"
    site.mkdir()
    for name in SITE_DIRS:
        if name not in drop:
            (site / name).mkdir()
    for name in SITE_FILES:
        if name not in drop:
            (site / name).touch()
    for name in add:
        (site / name).mkdir()
    return site


def test_every_installed_name_travels_exactly_once(tmp_path):
    selection = pack.select(fake_site(tmp_path))
    carried = [n for names in selection.values() for n in names]
    assert len(carried) == len(set(carried))
    assert set(carried) == (set(SITE_DIRS) | set(SITE_FILES)) - {"__pycache__"}


def test_platformdirs_travels_with_pooch(tmp_path):
    """pooch imports platformdirs at start; without it three audio models fail to load."""
    selection = pack.select(fake_site(tmp_path))
    (archive,) = [a for a, names in selection.items() if "pooch" in names]
    assert {"platformdirs", "platformdirs-4.14.9.dist-info"} <= set(selection[archive])
    assert any(p.startswith("platformdirs") for p in pack.PACKAGES)


def test_dist_infos_travel_with_their_packages(tmp_path):
    """The old shell globs (annotated_types* ...) expanded in the repo root: the archive
    lost the names they should have matched."""
    selection = pack.select(fake_site(tmp_path))
    taken = {n: a for a, names in selection.items() for n in names}
    for package, dist in [
        ("annotated_types", "annotated_types-0.8.0.dist-info"),
        ("typing_inspection", "typing_inspection-0.4.5.dist-info"),
        ("pydantic_core", "pydantic_core-2.50.5.dist-info"),
        ("faster_whisper", "faster_whisper-1.2.1.dist-info"),
        ("whisper", "openai_whisper-20250625.dist-info"),
    ]:
        assert taken[package] == taken[dist]


def test_a_missing_package_is_named(tmp_path):
    site = fake_site(tmp_path, drop=("platformdirs", "platformdirs-4.14.9.dist-info"))
    with pytest.raises(pack.PackError, match="'platformdirs' matches nothing"):
        pack.select(site)


def test_a_package_without_a_group_is_named(tmp_path):
    site = fake_site(tmp_path, add=("jiwer", "jiwer-4.0.0.dist-info"))
    with pytest.raises(pack.PackError, match="not carried: jiwer, jiwer-4.0.0"):
        pack.select(site)


def test_assign_keeps_every_folder_under_the_limit_and_the_project_last():
    mib = 2**20
    sizes = {"a": 40 * mib, "b": 30 * mib, "c": 25 * mib, "d": 10 * mib, "e": 5 * mib}
    last = {"proj.whl": 2 * mib, "bench30.mp4": 8 * mib}
    plan = pack.assign(sizes, 60 * mib, last)
    every = {**sizes, **last}
    assert sorted(n for f in plan for n in f) == sorted(every)
    assert all(sum(every[n] for n in folder) <= 60 * mib for folder in plan)
    assert {"proj.whl", "bench30.mp4"} <= set(plan[-1])
    assert len(plan) == 3  # 120 MiB in all: three folders of 60 are enough
    with pytest.raises(pack.PackError, match="over 60 MiB"):
        pack.assign({"huge": 61 * mib}, 60 * mib, last)


def test_prune_keeps_only_the_312_stub_and_the_cuda130_library(tmp_path):
    site = tmp_path / "s"
    stubs = site / "pytriton" / "tritonserver" / "python_backend_stubs"
    for v in ("3.8", "3.9", "3.10", "3.11", "3.12", "3.13"):
        (stubs / v).mkdir(parents=True)
    bnb = site / "bitsandbytes"
    bnb.mkdir()
    libs = ["cpu", "cuda118", "cuda128", "cuda130", "cuda132", "rocm64", "xpu2025"]
    for lib in libs:
        (bnb / f"libbitsandbytes_{lib}.so").touch()
    removed = {p.relative_to(site).as_posix() for pat in pack.PRUNE for p in site.glob(pat)}
    kept = {
        p.relative_to(site).as_posix() for p in site.rglob("*") if p.is_file() or p.is_dir()
    } - removed
    assert sorted(
        v.name for v in stubs.iterdir() if f"{stubs.relative_to(site).as_posix()}/{v.name}" in kept
    ) == ["3.12"]
    assert sorted(p.name for p in bnb.iterdir() if f"bitsandbytes/{p.name}" in kept) == [
        "libbitsandbytes_cuda130.so"
    ]


def test_every_module_folder_is_a_package_so_the_wheel_carries_it():
    """The GPU host installs the project's wheel (namespaces = false): a folder of modules
    without __init__.py is silently left out of it (serving/ was, launcher and adapter with
    it)."""
    src = ROOT / "src" / "tiktok_analyzer"
    for folder in [src, *src.rglob("*")]:
        if not folder.is_dir() or "model_repository" in folder.parts:
            continue
        if any(folder.glob("*.py")):
            assert (folder / "__init__.py").exists(), f"{folder} has no __init__.py"
