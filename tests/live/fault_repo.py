"""A test-only model repository: some real models (linked from the package's model repository) plus
``hang_test``, a model that sleeps instead of answering, for deadline tests. Test-only
models never go into the real repository."""

from __future__ import annotations

from pathlib import Path

from tiktok_analyzer.serving.launcher import default_model_repository

#: Sleeps up to hang_s, ending early once every request it holds is cancelled; writes
#: "cancelled" to the marker file when that happens, so a test can see Triton passed the
#: cancellation on.
_HANG_MODEL = """
import json
import os
import sys
import time

_SITE = os.environ.get("TIKTOK_ANALYZER_SITE_PACKAGES")
if _SITE and _SITE not in sys.path[:1]:
    sys.path.insert(0, _SITE)

import numpy as np
import triton_python_backend_utils as pb_utils


class TritonPythonModel:
    def initialize(self, args):
        params = json.loads(args["model_config"])["parameters"]
        self.hang_s = float(params["hang_s"]["string_value"])
        self.marker = params["marker"]["string_value"]

    def execute(self, requests):
        end = time.monotonic() + self.hang_s
        while time.monotonic() < end:
            if all(r.is_cancelled() for r in requests):
                with open(self.marker, "a") as f:
                    f.write("cancelled\\n")
                return [pb_utils.InferenceResponse(error=pb_utils.TritonError(
                    "cancelled", pb_utils.TritonError.CANCELLED)) for _ in requests]
            time.sleep(0.05)
        body = json.dumps({"status": "ok", "error": None, "elapsed_s": self.hang_s,
                           "model": {"name": "hang", "weights": "none"}, "result": {}})
        out = pb_utils.Tensor("RESULT", np.array([[body]], dtype=np.object_))
        return [pb_utils.InferenceResponse(output_tensors=[out]) for _ in requests]
"""

_HANG_CONFIG = """name: "hang_test"
backend: "python"
max_batch_size: 8
dynamic_batching {{ max_queue_delay_microseconds: 1000 }}
input [
  {{ name: "META" data_type: TYPE_STRING dims: [ 1 ] }},
  {{ name: "AUDIO" data_type: TYPE_FP32 dims: [ -1 ] allow_ragged_batch: true }}
]
output [
  {{ name: "RESULT" data_type: TYPE_STRING dims: [ 1 ] }}
]
instance_group [ {{ kind: KIND_CPU count: 1 }} ]
parameters {{ key: "analyzer" value {{ string_value: "hang_test" }} }}
parameters {{ key: "input_audio" value {{ string_value: "true" }} }}
parameters {{ key: "depends_on" value {{ string_value: "" }} }}
parameters {{ key: "hang_s" value {{ string_value: "{hang_s}" }} }}
parameters {{ key: "marker" value {{ string_value: "{marker}" }} }}
"""


def make_repository(root: Path, models: list[str], *, hang_s: float = 30.0) -> Path:
    """``root``/repo with ``models`` linked from the real repository and ``hang_test``;
    hang_test's cancellation marker is ``root``/hang_cancelled.txt."""
    repo = root / "repo"
    repo.mkdir(parents=True, exist_ok=True)
    real = default_model_repository()
    for name in models:
        link = repo / name
        if not link.exists():
            link.symlink_to(real / name)
    hang = repo / "hang_test"
    (hang / "1").mkdir(parents=True, exist_ok=True)
    (hang / "1" / "model.py").write_text(_HANG_MODEL)
    (hang / "config.pbtxt").write_text(
        _HANG_CONFIG.format(hang_s=hang_s, marker=root / "hang_cancelled.txt")
    )
    return repo
