"""Short-form video analysis served by NVIDIA Triton.

The code lives in the repository's top-level folders, mapped onto this package by
pyproject.toml: ``analyzers/`` -> ``tiktok_analyzer.analyzers`` (logic, free of Triton),
``orchestrator/`` -> ``tiktok_analyzer.orchestrator`` (probe, decode, fan-out, report, CLI),
``groundtruth/`` -> ``tiktok_analyzer.groundtruth`` (clips with known truth).
"""

__version__ = "0.1.0"

import warnings

# tritonclient 2.51's shared-memory module imports pkg_resources, and setuptools warns about
# that on every import: noise on stderr of every command (one-line errors stay one line).
warnings.filterwarnings("ignore", message="pkg_resources is deprecated", category=UserWarning)
