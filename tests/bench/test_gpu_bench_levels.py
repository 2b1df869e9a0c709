"""What gpu_bench records of each concurrency level: CPU seconds by process (bench/proc_cpu.py,
read from /proc) and whether every analyzer ended ok, without which a level is no figure."""

from __future__ import annotations

import os
import subprocess
import sys
import time

from tests.bench import ROOT, load_script

proc_cpu = load_script("proc_cpu", ROOT / "bench" / "proc_cpu.py")
gpu_bench = load_script("gpu_bench", ROOT / "bench" / "gpu_bench.py")

SPIN = "import time\nt = time.process_time()\nwhile time.process_time() - t < {s}: pass\n"


def test_a_live_child_is_counted_under_its_program_and_a_reaped_one_under_us():
    before = proc_cpu.tree_cpu(os.getpid())
    live = subprocess.Popen([sys.executable, "-c", SPIN.format(s=0.6) + "time.sleep(30)"])
    try:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:  # until the child has spun its 0.6 s
            used = proc_cpu.diff(proc_cpu.tree_cpu(os.getpid()), before)
            if sum(v for k, v in used.items() if k != "this process (decode, client)") >= 0.55:
                break
            time.sleep(0.05)
        program = os.path.basename(sys.executable)
        assert used.get(program, 0.0) >= 0.55, used
    finally:
        live.kill()
        live.wait()
    mid = proc_cpu.tree_cpu(os.getpid())
    subprocess.run([sys.executable, "-c", SPIN.format(s=0.4)], check=True)
    used = proc_cpu.diff(proc_cpu.tree_cpu(os.getpid()), mid)
    # The ended child is reaped: its time is in this process's children's fields.
    assert used["this process (decode, client)"] >= 0.35, used


def test_label_names_a_stub_by_its_model_folder(tmp_path):
    model = tmp_path / "video_llava" / "1" / "model.py"
    model.parent.mkdir(parents=True)
    model.write_text("")
    # A program named as Triton's stub, given the model's file as the stub is.
    stub = tmp_path / "triton_python_backend_stub"
    stub.symlink_to(sys.executable)
    child = subprocess.Popen([str(stub), "-c", "import time; time.sleep(30)", str(model)])
    try:
        time.sleep(0.2)
        assert proc_cpu.label(child.pid) == "stub video_llava"
    finally:
        child.kill()
        child.wait()


def test_by_process_is_per_clip_largest_first_with_the_rest_summed():
    used = {"stub text_overlay": 8.0, "tritonserver": 0.4, "stub cuts": 2.0, "a": 0.2, "b": 0.2}
    out = gpu_bench.by_process(used, clips=2, top=2)
    assert list(out) == ["stub text_overlay", "stub cuts", "others"]
    assert out == {"stub text_overlay": 4.0, "stub cuts": 1.0, "others": 0.4}


def test_a_level_with_an_analyzer_not_ok_is_no_throughput_figure():
    from types import SimpleNamespace as NS

    def clip(llava: str, error: str | None = None):
        analyzers = {
            "cut_analysis": NS(status="ok", error=None),
            "video_llava": NS(status=llava, error=error),
        }
        return {"report": NS(analyzers=analyzers)}

    assert gpu_bench.not_ok([clip("ok"), clip("ok")]) == {}
    bad = gpu_bench.not_ok([clip("ok"), clip("error", "CUDA out of memory"), clip("error", "x")])
    assert bad == {"video_llava": "2 of 3 clips error (CUDA out of memory)"}
    level = {
        "concurrency": 8,
        "clips": 8,
        "wall_s": 20.76,
        "clips_per_min": 23.12,
        "clip_wall_median_s": 20.4,
        "cpu_busy_cores": 9.7,
        "cpu_s_per_clip": 25.3,
        "gpu_utilization_pct": 26.0,
        "not_ok": {},
    }
    assert "**23.1**" in gpu_bench.level_row(level)
    level["not_ok"] = bad
    row = gpu_bench.level_row(level)
    assert "23.1" not in row and "not valid (video_llava not ok)" in row


def test_the_forkserver_and_a_module_are_named_for_what_they_run():
    """The decode children's CPU lands in the forkserver (their parent): named for it."""
    children = [
        subprocess.Popen(
            [
                sys.executable,
                "-c",
                "from multiprocessing.forkserver import main; import time; time.sleep(30)",
            ]
        ),
        subprocess.Popen([sys.executable, "-m", "http.server", "0"], stdout=subprocess.DEVNULL),
    ]
    try:
        time.sleep(0.3)
        assert [proc_cpu.label(c.pid) for c in children] == [
            "decode children (forkserver)",
            "http.server",
        ]
    finally:
        for c in children:
            c.kill()
            c.wait()
