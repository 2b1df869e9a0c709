"""Generate the client's gRPC modules from tiktok_analyzer.proto (grpcio-tools 1.62.3, whose
protoc 25 writes code that protobuf 4.25 runs).

    python client/generate_proto.py          # write tiktok_analyzer_client/pb/
    python client/generate_proto.py --check  # exit 1 when the committed files are stale

The proto is compiled under the virtual path ``tiktok_analyzer_client/pb/`` so the generated
service module imports its messages from the package, not from a top-level module.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
PROTO = HERE / "tiktok_analyzer.proto"
PACKAGE_DIR = "tiktok_analyzer_client/pb"
OUTPUTS = ("tiktok_analyzer_pb2.py", "tiktok_analyzer_pb2.pyi", "tiktok_analyzer_pb2_grpc.py")


def generate(out_root: Path) -> dict[str, str]:
    """Compile the proto under ``out_root``; file name -> text of each generated module."""
    from grpc_tools import protoc

    args = [
        "protoc",
        f"-I{PACKAGE_DIR}={HERE}",
        f"--python_out={out_root}",
        f"--pyi_out={out_root}",
        f"--grpc_python_out={out_root}",
        str(PROTO),
    ]
    if protoc.main(args) != 0:
        raise RuntimeError("protoc failed on " + str(PROTO))
    return {name: (out_root / PACKAGE_DIR / name).read_text() for name in OUTPUTS}


def main(argv: list[str]) -> int:
    with tempfile.TemporaryDirectory() as tmp:
        fresh = generate(Path(tmp))
    target = HERE / PACKAGE_DIR
    if argv == ["--check"]:
        stale = [
            n
            for n, text in fresh.items()
            if not (target / n).exists() or (target / n).read_text() != text
        ]
        if stale:
            print(
                f"stale: {', '.join(stale)}; run python client/generate_proto.py", file=sys.stderr
            )
            return 1
        return 0
    if argv:
        print("usage: python client/generate_proto.py [--check]", file=sys.stderr)
        return 2
    for name, text in fresh.items():
        (target / name).write_text(text)
        print(f"wrote {target / name}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
