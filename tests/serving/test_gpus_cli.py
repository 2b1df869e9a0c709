"""`--gpus` on `analyze` and `serve`: usage errors are one line and exit 2, before any
server starts or any clip is read."""

from __future__ import annotations

import pytest

from tiktok_analyzer.cli import main


@pytest.mark.parametrize(
    ("argv", "says"),
    [
        (["analyze", "nothing.mp4", "--gpus", "0,x"], "--gpus takes all or GPU indices"),
        (["analyze", "nothing.mp4", "--gpus", "0", "--triton-url", "h:1"], "excludes --triton-url"),
        (["analyze", "nothing.mp4", "--gpu-memory-mib", "1000"], "goes with --gpus"),
        (["analyze", "nothing.mp4", "--gpus", "0", "--server", "h:1"], "exclude each other"),
        # 24 GiB cards: video_llava's measured 36758 MiB fits on none.
        (
            ["analyze", "nothing.mp4", "--gpus", "0,1", "--gpu-memory-mib", "24576"],
            "video_llava needs 36758 MiB",
        ),
        (
            ["serve", "--gpus", "0,1,2,3", "--gpu-memory-mib", "24576"],
            "video_llava needs 36758 MiB",
        ),
        (["serve", "--gpus", "0", "--triton-url", "h:1"], "excludes --triton-url"),
    ],
)
def test_gpus_usage_errors(capsys, argv: list[str], says: str) -> None:
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert says in err and "\n" not in err, err


def test_analyze_plans_only_the_models_it_needs(capsys) -> None:
    # cut_analysis alone needs no GPU memory: the plan fits any card, so the run goes on to
    # the clip, which is refused as bad input (exit 2) before any server starts.
    argv = ["analyze", "nothing.mp4", "--analyzers", "cut_analysis", "--gpus", "0,1"]
    assert main([*argv, "--gpu-memory-mib", "1024"]) == 2
    assert "nothing.mp4" in capsys.readouterr().err
