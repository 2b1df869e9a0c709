"""Pack this project's Python 3.12 packages for a GPU host that reaches no package index.

The lent H100 (bench/gpu/README.md) has Python 3.12, torch, transformers and numpy 2; the
rest travels with the working tree, at most 64 MiB a call, in git-ignored folders
``.gpu/c1``, ``.gpu/c2``, ... that bench/gpu/unpack.sh unpacks there in order.

    python3 bench/gpu/pack.py          # needs pip access; writes .gpu/ (git-ignored)

Steps: download the wheels for CPython 3.12 on x86-64 Linux (:data:`PACKAGES`), install them
into one site folder, prune what the GPU host never loads (:data:`PRUNE`), split the site
folder into tar.xz archives (:data:`GROUPS`, checked by :func:`select`), build this project's
wheels, render the bench clip, and share all of it out over the folders, each under
``--limit-mib``. Only the standard library is imported at module level: run.sh calls
``--digest`` with the GPU host's bare ``python3``.
"""

from __future__ import annotations

import argparse
import fnmatch
import hashlib
import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

#: What the GPU host lacks (or has only for numpy 2: scipy), at the project's pins. A new
#: dependency of an analyzer goes here AND into a group of GROUPS below (select() fails
#: until it does). Unpinned ones follow their dependants' needs.
PACKAGES: tuple[str, ...] = (
    # the Triton 2.51 stub needs numpy < 2 first on its path (docs/DESIGN.md, Triton)
    "numpy==1.26.4",
    "scipy==1.17.1",
    "av==18.1.0",
    "nvidia-pytriton==0.7.0",
    "tritonclient==2.51.0",
    "protobuf==4.25.9",
    "python-rapidjson",
    "pydantic==2.14.4",
    "pydantic-core",
    "annotated-types",
    "typing-inspection",
    "prometheus-client==0.26.0",
    "jsonschema==4.26.0",
    "jsonschema-specifications",
    "referencing",
    "rpds-py",
    # sound
    "librosa==0.11.0",
    "soundfile==0.14.0",
    "audioread",
    "soxr",
    "pooch",
    # pooch imports it at start: without it audio_analysis, audio_environment and
    # sound_effects fail to load
    "platformdirs",
    # librosa's numba, built for numpy 1.x: the host's numba is built against its numpy 2,
    # and with numpy 1.26 in front its compiled ufuncs crashed the audio_environment and
    # sound_effects stubs in initialize (SIGSEGV in numba/np/ufunc/gufunc.py, faulthandler)
    "numba==0.61.2",
    "llvmlite==0.44.0",
    "decorator",
    "cffi",
    "pycparser",
    # speech; openai-whisper (built from its sdist, SDISTS) imports tiktoken and
    # more-itertools at start, which the host image is not known to have
    "tiktoken==0.14.0",
    "more-itertools==11.2.1",
    "ctranslate2==4.8.5",
    "faster-whisper==1.2.1",
    # faster-whisper's VAD, which speech_transcription loads at start on any engine
    "onnxruntime==1.32.0",
    # picture
    "open_clip_torch==3.3.0",
    "ftfy",
    "wcwidth",
    "ultralytics==8.4.190",
    "ultralytics-thop",
    "easyocr==1.7.2",
    "python-bidi",
    "pyclipper",
    "shapely",
    "mediapipe==0.10.21",
    # video_llava in nf4
    "bitsandbytes==0.50.2",
    # the GPU's video decoder (orchestrator/nvdec.py, TIKTOK_ANALYZER_VIDEO_DECODER=nvdec)
    "PyNvVideoCodec==2.2.4",
)

#: Published as source only: built into a wheel here (pure Python).
SDISTS: tuple[str, ...] = ("openai-whisper==20250625",)

#: Removed from the site folder before packing: console scripts (their shebangs name this
#: machine's interpreter), the stubs of other Pythons, the libpython copy (the host has its
#: own), bitsandbytes' libraries for other CUDA versions (torch there is cu130).
PRUNE: tuple[str, ...] = (
    "bin",
    "nvidia_pytriton.libs/libpython3*",
    "pytriton/tritonserver/python_backend_stubs/3.[!1]*",
    "pytriton/tritonserver/python_backend_stubs/3.1[!2]*",
    "bitsandbytes/libbitsandbytes_cpu.so",
    "bitsandbytes/libbitsandbytes_cuda1[!3]*.so",
    "bitsandbytes/libbitsandbytes_cuda13[!0]*.so",
    "bitsandbytes/libbitsandbytes_rocm*.so",
    "bitsandbytes/libbitsandbytes_xpu*.so",
    # PyNvVideoCodec's wheel puts its samples, benchmarks and FFmpeg's source tarball at the
    # top of the site folder; the decoder needs none of them
    "benchmarks",
    "samples",
    "external",
)

#: Archive name -> glob patterns of top-level names in the site folder. Each pattern must
#: match at least one name and every name must land in exactly one archive, so a package
#: added to PACKAGES but not here (or renamed upstream) stops the pack with its name.
#: Archives are small enough to be shared out over folders of ~60 MiB.
GROUPS: dict[str, tuple[str, ...]] = {
    "triton.tar.xz": ("pytriton", "nvidia_pytriton.libs", "nvidia_pytriton-*.dist-info"),
    "numpy.tar.xz": ("numpy", "numpy.libs", "numpy-1.26.4.dist-info"),
    "numba.tar.xz": ("numba", "numba-*.dist-info", "llvmlite", "llvmlite-*.dist-info"),
    "scipy.tar.xz": ("scipy", "scipy.libs", "scipy-1.17.1.dist-info"),
    "av.tar.xz": ("av", "av.libs", "av-18.1.0.dist-info"),
    "ctranslate2.tar.xz": (
        "ctranslate2",
        "ctranslate2.libs",
        "ctranslate2-*.dist-info",
        "faster_whisper",
        "faster_whisper-*.dist-info",
    ),
    "onnxruntime.tar.xz": ("onnxruntime", "onnxruntime-*.dist-info"),
    "mediapipe.tar.xz": ("mediapipe", "mediapipe.libs", "mediapipe-0.10.21.dist-info"),
    "bitsandbytes.tar.xz": ("bitsandbytes", "bitsandbytes-*.dist-info"),
    "nvdec.tar.xz": ("PyNvVideoCodec", "pynvvideocodec-*.dist-info", "pynvvideocodec."),
    "client.tar.xz": (
        "tritonclient",
        "tritonclient-*.dist-info",
        "tritonclientutils",
        "tritongrpcclient",
        "tritonhttpclient",
        "tritonshmutils",
        "google",
        "protobuf-*.dist-info",
        "rapidjson*",
        "python_rapidjson-*.dist-info",
        "pydantic",
        "pydantic-*.dist-info",
        "pydantic_core",
        "pydantic_core-*.dist-info",
        "annotated_types",
        "annotated_types-*.dist-info",
        "typing_inspection",
        "typing_inspection-*.dist-info",
        "prometheus_client",
        "prometheus_client-*.dist-info",
        "jsonschema",
        "jsonschema-*.dist-info",
        "jsonschema_specifications",
        "jsonschema_specifications-*.dist-info",
        "referencing",
        "referencing-*.dist-info",
        "rpds",
        "rpds_py-*.dist-info",
    ),
    "sound.tar.xz": (
        "librosa",
        "librosa-*.dist-info",
        "soundfile.py",
        "_soundfile.py",
        "_soundfile_data",
        "soundfile-*.dist-info",
        "audioread",
        "audioread-*.dist-info",
        "soxr",
        "soxr-*.dist-info",
        "pooch",
        "pooch-*.dist-info",
        "platformdirs",
        "platformdirs-*.dist-info",
        "decorator",
        "decorator-*.dist-info",
        "cffi",
        "cffi-*.dist-info",
        "_cffi_backend*",
        "pycparser",
        "pycparser-*.dist-info",
        "whisper",
        "openai_whisper-*.dist-info",
        "tiktoken",
        "tiktoken_ext",
        "tiktoken-*.dist-info",
        "more_itertools",
        "more_itertools-*.dist-info",
    ),
    "picture.tar.xz": (
        "open_clip",
        "open_clip_train",
        "open_clip_torch-*.dist-info",
        "ftfy",
        "ftfy-*.dist-info",
        "wcwidth",
        "wcwidth-*.dist-info",
        "ultralytics",
        "ultralytics-*.dist-info",
        "thop",
        "ultralytics_thop-*.dist-info",
        "easyocr",
        "easyocr-*.dist-info",
        "bidi",
        "python_bidi-*.dist-info",
        "pyclipper",
        "pyclipper-*.dist-info",
        "shapely",
        "shapely.libs",
        "shapely-*.dist-info",
        # license texts some wheels put at the top level
        "LICENSE.txt",
        "licensing",
    ),
}

#: Never carried (left by pip in a --target folder).
IGNORED: frozenset[str] = frozenset({"__pycache__"})


class PackError(Exception):
    """The site folder and GROUPS disagree; the message says how to fix GROUPS."""


def select(site: Path) -> dict[str, list[str]]:
    """Archive name -> the top-level names of ``site`` it takes (sorted), from GROUPS.

    Raises PackError for a pattern that matches nothing (a package missing or renamed), a
    name taken by two archives, or a name taken by none (a package downloaded but never
    carried)."""
    names = sorted(p.name for p in site.iterdir() if p.name not in IGNORED)
    taken: dict[str, str] = {}
    out: dict[str, list[str]] = {}
    for archive, patterns in GROUPS.items():
        chosen: list[str] = []
        for pattern in patterns:
            hits = fnmatch.filter(names, pattern)
            if not hits:
                raise PackError(
                    f"{archive}: {pattern!r} matches nothing in {site} (is its package in "
                    "PACKAGES of bench/gpu/pack.py, under that name?)"
                )
            for name in hits:
                if name in taken and taken[name] != archive:
                    raise PackError(f"{name} is taken by both {taken[name]} and {archive}")
                taken[name] = archive
                if name not in chosen:
                    chosen.append(name)
        out[archive] = sorted(chosen)
    left = [n for n in names if n not in taken]
    if left:
        raise PackError(
            f"not carried: {', '.join(left)} (add each to a group of GROUPS in bench/gpu/pack.py)"
        )
    return out


def assign(sizes: dict[str, int], limit: int, last: dict[str, int]) -> list[list[str]]:
    """Share files out over folders of at most ``limit`` bytes: first fit, largest first.
    ``last`` (this project's wheels, the clip) go together into the final folder, which
    unpacks last and runs the bench. Raises PackError for a file larger than ``limit``."""
    folders: list[list[str]] = []
    used: list[int] = []
    tail = sum(last.values())
    if tail > limit:
        raise PackError(f"{', '.join(last)} alone take {tail / 2**20:.1f} MiB > limit")
    for name, size in sorted(sizes.items(), key=lambda kv: (-kv[1], kv[0])):
        if size > limit:
            raise PackError(f"{name} is {size / 2**20:.1f} MiB, over {limit / 2**20:.0f} MiB")
        for i, u in enumerate(used):
            if u + size <= limit:
                folders[i].append(name)
                used[i] += size
                break
        else:
            folders.append([name])
            used.append(size)
    # The final folder: the one with room for the project's files, else a new one.
    room = [i for i, u in enumerate(used) if u + tail <= limit]
    if room:
        i = max(room, key=lambda k: limit - used[k])
        final = folders.pop(i) + list(last)
    else:
        final = list(last)
    return [*folders, final]


def _ignored(rel: Path) -> bool:
    """What git ignores under src/ and client/ (.gitignore), so never reaches the device:
    left out here on both sides, the digests agree."""
    return rel.suffix == ".pyc" or any(
        p in {"__pycache__", ".ruff_cache", ".pytest_cache", "build", "dist"}
        or p.endswith(".egg-info")
        for p in rel.parts
    )


def tree_digest(root: Path = ROOT) -> str:
    """A digest of the project's source (src/ and client/): run.sh compares it on the GPU
    host with the one recorded at pack time, so a stale wheel is named, not measured."""
    h = hashlib.sha256()
    for top in ("src", "client", "pyproject.toml"):
        base = root / top
        files = [base] if base.is_file() else sorted(base.rglob("*")) if base.exists() else []
        for f in files:
            if f.is_file() and not _ignored(f.relative_to(root)):
                h.update(str(f.relative_to(root)).encode() + b"\0" + f.read_bytes() + b"\0")
    return h.hexdigest()[:16]


def _platform_args() -> list[str]:
    args = ["--python-version", "3.12", "--implementation", "cp", "--only-binary=:all:"]
    for n in (17, 24, 27, 28, 31, 34, 35):
        args += ["--platform", f"manylinux_2_{n}_x86_64"]
    return args + ["--platform", "manylinux2014_x86_64", "--platform", "manylinux1_x86_64"]


def _pip(*args: str) -> None:
    subprocess.run([sys.executable, "-m", "pip", *args], check=True)


def build_site(work: Path) -> Path:
    """Download, install into one --target folder for Python 3.12, prune. Returns the site."""
    dl, site = work / "dl", work / "site312"
    dl.mkdir(parents=True, exist_ok=True)
    plat = _platform_args()
    print(f"downloading {len(PACKAGES)} packages into {dl}", flush=True)
    _pip("download", "-q", "--no-deps", *plat, "-d", str(dl), *PACKAGES)
    _pip("wheel", "-q", "--no-deps", "-w", str(dl), *SDISTS)
    shutil.rmtree(site, ignore_errors=True)
    wheels = sorted(str(w) for w in dl.glob("*.whl"))
    _pip(
        "install", "-q", "--no-deps", "--no-compile", "--target", str(site), *plat,
        "--platform", "any", *wheels,
    )  # fmt: skip
    for pattern in PRUNE:
        for path in site.glob(pattern):
            shutil.rmtree(path) if path.is_dir() else path.unlink()
    return site


def write_archives(
    site: Path, selection: dict[str, list[str]], dest: Path, reuse: bool = False
) -> dict[str, int]:
    """One tar.xz per archive of ``selection``; returns their sizes. ``reuse`` (the site
    folder was reused, so unchanged) keeps an archive made from the same names before: xz
    on two busy cores takes minutes per part."""
    dest.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ, XZ_OPT="-6 -T0")
    sizes = {}
    for archive, names in selection.items():
        out, listing = dest / archive, dest / f"{archive}.names"
        if reuse and out.exists() and listing.exists() and listing.read_text().split() == names:
            print(f"  {archive}: kept", flush=True)
        else:
            print(f"  {archive}: {', '.join(names)}", flush=True)
            listing.unlink(missing_ok=True)
            subprocess.run(["tar", "-C", str(site), "-cJf", str(out), *names], check=True, env=env)
            # Written once the archive is whole: an interrupted pack never reuses a torso.
            listing.write_text("\n".join(names) + "\n")
        sizes[archive] = out.stat().st_size
    return sizes


def project_files(work: Path, clip: Path | None) -> dict[str, Path]:
    """This project's wheels (built from the tree as it is now) and the bench clip."""
    out = work / "project"
    shutil.rmtree(out, ignore_errors=True)
    _pip("wheel", "-q", "--no-deps", "-w", str(out), str(ROOT), str(ROOT / "client"))
    files = {w.name: w for w in sorted(out.glob("*.whl"))}
    if clip is None:
        clip = work / "bench30.mp4"
        if not clip.exists():
            print(f"rendering the bench clip into {clip}", flush=True)
            subprocess.run(
                [sys.executable, str(ROOT / "bench" / "gpu_bench.py"), "--render", str(clip)],
                check=True,
            )
    files["bench30.mp4"] = clip
    return files


def write_folders(work: Path, plan: list[list[str]], files: dict[str, Path]) -> list[Path]:
    for old in work.glob("c[0-9]*"):
        shutil.rmtree(old)
    folders = []
    for i, names in enumerate(plan, start=1):
        folder = work / f"c{i}"
        folder.mkdir()
        for name in names:
            shutil.copy2(files[name], folder / name)
        folders.append(folder)
    # The final folder names every part, so run.sh can tell a machine that went cold
    # between calls (and lost the earlier parts) from a complete one.
    parts = sorted(n for n in files if n.endswith(".tar.xz"))
    (folders[-1] / "MANIFEST").write_text(
        f"digest {tree_digest()}\n" + "".join(f"part {p}\n" for p in parts)
    )
    return folders


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", default=str(ROOT / ".gpu"), help="output folder (ignored)")
    parser.add_argument(
        "--limit-mib", type=float, default=58.0, help="per folder (the tree rides along)"
    )
    parser.add_argument("--reuse-site", action="store_true", help="skip download and install")
    parser.add_argument("--clip", help="the bench clip (default: rendered once into WORK)")
    parser.add_argument("--digest", action="store_true", help="print the source digest")
    args = parser.parse_args(argv)
    if args.digest:
        print(tree_digest())
        return 0
    work = Path(args.work).resolve()
    try:
        site = work / "site312"
        if not (args.reuse_site and site.is_dir()):
            site = build_site(work)
        selection = select(site)
        print(f"archiving {len(selection)} parts", flush=True)
        sizes = write_archives(site, selection, work / "parts", reuse=args.reuse_site)
        files = {name: work / "parts" / name for name in sizes}
        project = project_files(work, Path(args.clip) if args.clip else None)
        files.update(project)
        limit = int(args.limit_mib * 2**20)
        plan = assign(sizes, limit, {n: p.stat().st_size for n, p in project.items()})
    except PackError as exc:
        print(f"pack: {exc}", file=sys.stderr)
        return 1
    except subprocess.CalledProcessError as exc:
        print(
            f"pack: {' '.join(map(str, exc.cmd[:4]))} ... failed ({exc.returncode})",
            file=sys.stderr,
        )
        return 1
    folders = write_folders(work, plan, files)
    for folder in folders:
        size = sum(f.stat().st_size for f in folder.iterdir())
        print(
            f"{folder.relative_to(ROOT) if folder.is_relative_to(ROOT) else folder}: "
            f"{size / 2**20:.1f} MiB: {', '.join(sorted(p.name for p in folder.iterdir()))}"
        )
    print(f"{len(folders)} folders; the device calls are in bench/gpu/README.md")
    return 0


if __name__ == "__main__":
    sys.exit(main())
