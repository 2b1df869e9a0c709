"""The report: typed models, serialised to the contract in docs/REPORT_CONTRACT.md.

The JSON Schema in ``client/report.schema.json`` is generated from these models and from
every analyzer's ``Result`` model (``python -m tiktok_analyzer.orchestrator.report --write``);
the tests check it is current and validate every report they make against it.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

# The envelope each model answers with is the report's entry: one model, so they cannot drift.
from tiktok_analyzer.wire import AnalyzerEntry, ModelInfo

__all__ = [
    "SCHEMA_PATH",
    "SCHEMA_VERSION",
    "AnalyzerEntry",
    "ModelInfo",
    "Processing",
    "Report",
    "VideoInfo",
    "report_schema",
]

SCHEMA_VERSION = "1.1"
#: In a source checkout: the client package's copy of the schema, for other services.
SCHEMA_PATH = Path(__file__).resolve().parents[3] / "client" / "report.schema.json"


class VideoInfo(BaseModel):
    path: str
    duration_s: float
    fps: float
    width: int
    height: int
    rotation: int
    has_audio: bool
    has_video: bool
    codec: str


class Processing(BaseModel):
    model_config = ConfigDict(extra="allow")

    started_at: str = Field(description="ISO-8601, UTC")
    wall_s: float = Field(description="probe to report, server start-up excluded")
    realtime_factor: float = Field(description="wall_s / clip duration (lower is faster)")
    triton_url: str
    versions: dict[str, str]
    decode_s: float = 0.0
    video_decoder: str = Field(
        default="cpu", description="what decoded the picture: cpu (FFmpeg) or nvdec (the GPU's)"
    )
    server_start_s: float | None = Field(
        default=None, description="embedded Triton start-up, when this run started it"
    )
    warnings: list[str] = Field(default_factory=list)


class Report(BaseModel):
    schema_version: str = SCHEMA_VERSION
    video: VideoInfo
    processing: Processing
    analyzers: dict[str, AnalyzerEntry]

    def failed(self) -> list[str]:
        return [name for name, entry in self.analyzers.items() if entry.status == "failed"]


def report_schema() -> dict[str, Any]:
    """The report's JSON Schema, each analyzer's ``result`` typed by its Result model."""
    from pydantic.json_schema import models_json_schema

    from tiktok_analyzer.analyzers import ANALYZER_NAMES
    from tiktok_analyzer.analyzers.results import result_class

    results = {name: result_class(name) for name in ANALYZER_NAMES}
    models = [(Report, "validation"), *((m, "validation") for m in set(results.values()))]
    keys, top = models_json_schema(models, ref_template="#/$defs/{model}")
    defs = top["$defs"]
    report = defs.pop("Report")
    entry_ref = (
        keys[(AnalyzerEntry, "validation")]["$ref"]
        if (AnalyzerEntry, "validation") in keys
        else "#/$defs/AnalyzerEntry"
    )
    per_analyzer = {}
    for name, model in results.items():
        ref = keys[(model, "validation")]["$ref"]
        # Which fields a partial answer may lack: those its Result says only the model
        # makes; an analyzer without them never answers partial.
        made = list(model.made_by_model)
        unavailable: dict[str, Any] = (
            {
                "description": "fields only the model makes, null in a partial result",
                "items": {"properties": {"field": {"enum": made}}},
            }
            if made
            else {"maxItems": 0}
        )
        per_analyzer[name] = {
            "allOf": [{"$ref": entry_ref}],
            "properties": {
                "result": {"anyOf": [{"$ref": ref}, {"type": "null"}]},
                "unavailable_fields": unavailable,
            },
        }
    report["properties"]["analyzers"] = {
        "type": "object",
        "properties": per_analyzer,
        "additionalProperties": {"$ref": entry_ref},
    }
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": "tiktok-analyzer report",
        "description": f"schema_version {SCHEMA_VERSION}; see docs/REPORT_CONTRACT.md",
        **report,
        "$defs": defs,
    }


def schema_text() -> str:
    return json.dumps(report_schema(), indent=2, sort_keys=True) + "\n"


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv == ["--check"]:
        current = SCHEMA_PATH.read_text() if SCHEMA_PATH.exists() else ""
        if current != schema_text():
            print(
                f"{SCHEMA_PATH} is out of date: run python -m "
                "tiktok_analyzer.orchestrator.report --write",
                file=sys.stderr,
            )
            return 1
        return 0
    if argv == ["--write"]:
        SCHEMA_PATH.write_text(schema_text())
        print(f"wrote {SCHEMA_PATH}")
        return 0
    print("usage: python -m tiktok_analyzer.orchestrator.report --write|--check", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
