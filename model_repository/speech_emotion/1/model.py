"""Triton model for the speech_emotion analyzer: all the work is in the shared adapter."""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))

from triton_adapter import make_model  # noqa: E402

TritonPythonModel = make_model("speech_emotion")
