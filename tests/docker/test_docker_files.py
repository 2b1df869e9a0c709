"""Static checks of docker/: Docker cannot run here, so test what can be tested without it.

Every YAML parses; every file that compose, the Dockerfiles and kustomize refer to exists (and
is not dropped by the Dockerfile's .dockerignore); the server-side pins agree with
pyproject.toml; the dashboard is valid JSON with a query on every panel; every metric name a
query uses is one the services export; the PromQL and the Prometheus config pass promtool
(Debian's `prometheus` package) where it is installed; the Kubernetes objects point at each
other consistently and carry what the issue asks for (GPU, /dev/shm in memory, Triton's ready
and live endpoints, an autoscaler on a queue metric, disruption budgets).
"""

from __future__ import annotations

import json
import re
import shlex
import shutil
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
DOCKER = REPO / "docker"
K8S = DOCKER / "k8s"
COMPOSE = DOCKER / "compose.yaml"
DASHBOARD = DOCKER / "grafana" / "dashboards" / "tiktok-analyzer.json"
PROMETHEUS_CONFIG = DOCKER / "prometheus" / "prometheus.yml"
ADAPTER_RULES = K8S / "prometheus-adapter-rules.yaml"

#: What the orchestrator exports (issue 5, Metrics), by Prometheus type.
ORCHESTRATOR_METRICS = {
    "tiktok_analyzer_analyses_total": "counter",  # label status
    "tiktok_analyzer_analyzer_seconds": "histogram",  # label analyzer
    "tiktok_analyzer_analyzer_failures_total": "counter",  # label analyzer
    "tiktok_analyzer_realtime_factor": "histogram",
    "tiktok_analyzer_queue_depth": "gauge",
    "tiktok_analyzer_inflight_jobs": "gauge",
}
#: Triton's own metrics. The nv_inference_*, nv_cpu_* and nv_pinned_* names were read from the
#: embedded 2.51 server's /metrics; nv_gpu_* and nv_energy_* come from Triton's metrics
#: documentation (they only appear with a GPU).
TRITON_METRICS = {
    "nv_inference_request_success",
    "nv_inference_request_failure",
    "nv_inference_count",
    "nv_inference_exec_count",
    "nv_inference_request_duration_us",
    "nv_inference_queue_duration_us",
    "nv_inference_compute_input_duration_us",
    "nv_inference_compute_infer_duration_us",
    "nv_inference_compute_output_duration_us",
    "nv_inference_pending_request_count",
    "nv_cpu_utilization",
    "nv_cpu_memory_total_bytes",
    "nv_cpu_memory_used_bytes",
    "nv_pinned_memory_pool_total_bytes",
    "nv_pinned_memory_pool_used_bytes",
    "nv_gpu_utilization",
    "nv_gpu_memory_total_bytes",
    "nv_gpu_memory_used_bytes",
    "nv_gpu_power_usage",
    "nv_gpu_power_limit",
    "nv_energy_consumption",
}
#: Series names a query may use: histograms only through their _bucket/_sum/_count series.
KNOWN_SERIES = TRITON_METRICS | {
    f"{name}{suffix}"
    for name, kind in ORCHESTRATOR_METRICS.items()
    for suffix in (("_bucket", "_sum", "_count") if kind == "histogram" else ("",))
}
METRIC_TOKEN = re.compile(r"\b(?:nv|tiktok)_[a-z0-9_]+\b")

YAML_FILES = sorted(p for ext in ("*.yaml", "*.yml") for p in DOCKER.rglob(ext))


def _rel(path: Path) -> str:
    return str(path.relative_to(REPO))


def _load_all(path: Path) -> list[dict]:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc is not None]


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load(COMPOSE.read_text())


@pytest.fixture(scope="module")
def k8s_objects() -> list[dict]:
    kustomization = yaml.safe_load((K8S / "kustomization.yaml").read_text())
    return [doc for name in kustomization["resources"] for doc in _load_all(K8S / name)]


@pytest.fixture(scope="module")
def dashboard() -> dict:
    return json.loads(DASHBOARD.read_text())


@pytest.fixture(scope="module")
def adapter_rules() -> list[dict]:
    (configmap,) = _load_all(ADAPTER_RULES)
    return yaml.safe_load(configmap["data"]["config.yaml"])["rules"]


def _panels(dashboard: dict) -> list[dict]:
    out = []
    for panel in dashboard["panels"]:
        out.append(panel)
        out.extend(panel.get("panels", []))  # panels inside collapsed rows
    return out


def _dashboard_queries(dashboard: dict) -> list[tuple[str, str]]:
    """(where, PromQL) for every panel target and every templating query."""
    queries = [
        (f"panel {p['title']!r} {t['refId']}", t["expr"])
        for p in _panels(dashboard)
        for t in p.get("targets", [])
    ]
    for var in dashboard.get("templating", {}).get("list", []):
        if var.get("type") == "query":
            query = var["query"]["query"] if isinstance(var["query"], dict) else var["query"]
            queries.append((f"variable {var['name']}", query))
    return queries


def _adapter_queries(rules: list[dict]) -> list[tuple[str, str]]:
    return [
        (f"adapter rule {r['name']['as']}", q)
        for r in rules
        for q in (r["seriesQuery"], r["metricsQuery"])
    ]


# ---------------------------------------------------------------------------- YAML, files


def test_docker_folder_has_the_expected_files():
    expected = [
        "triton.Dockerfile",
        "orchestrator.Dockerfile",
        "compose.yaml",
        "README.md",
        "requirements-triton.txt",
        "prometheus/prometheus.yml",
        "grafana/dashboards/tiktok-analyzer.json",
        "k8s/kustomization.yaml",
    ]
    missing = [name for name in expected if not (DOCKER / name).is_file()]
    assert not missing, f"missing under docker/: {missing}"
    assert len(YAML_FILES) >= 10, [_rel(p) for p in YAML_FILES]


@pytest.mark.parametrize("path", YAML_FILES, ids=_rel)
def test_yaml_parses(path):
    docs = _load_all(path)
    assert docs, f"{_rel(path)} holds no document"
    for doc in docs:
        assert isinstance(doc, dict), f"{_rel(path)}: a document is {type(doc).__name__}"


def _without_defaults(text: str) -> str:
    """Resolve compose's ${VAR:-default} to its default (the path used when VAR is unset)."""
    return re.sub(r"\$\{[A-Z_][A-Z0-9_]*:-([^}]*)\}", r"\1", text)


def test_compose_references_exist(compose):
    missing = []
    for name, service in compose["services"].items():
        build = service.get("build")
        if build:
            context = (DOCKER / build["context"]).resolve()
            if not context.is_dir():
                missing.append(f"{name}: build context {build['context']}")
            if not (context / build["dockerfile"]).is_file():
                missing.append(f"{name}: dockerfile {build['dockerfile']}")
        for volume in service.get("volumes", []):
            source = _without_defaults(volume).split(":")[0]
            if source.startswith((".", "/")) and not (DOCKER / source).exists():
                missing.append(f"{name}: volume source {source}")
    assert not missing, missing


def test_compose_images_are_pinned(compose):
    for name, service in compose["services"].items():
        if "build" in service:
            continue
        image = service["image"]
        tag = image.rsplit(":", 1)[-1] if ":" in image.split("/")[-1] else ""
        assert tag and tag != "latest", f"{name}: image {image} is not pinned to a version"


def test_compose_topology(compose):
    services = compose["services"]
    assert set(services) >= {"triton", "orchestrator", "prometheus", "grafana"}
    triton, orch = services["triton"], services["orchestrator"]
    # Triton gets a GPU and a large, shareable /dev/shm ...
    devices = triton["deploy"]["resources"]["reservations"]["devices"]
    assert any("gpu" in d["capabilities"] for d in devices), devices
    assert triton["ipc"] == "shareable" and triton["shm_size"]
    assert "/v2/health/ready" in " ".join(triton["healthcheck"]["test"])
    # ... which the orchestrator joins once Triton is ready; clips are mounted read-only.
    assert orch["ipc"] == "service:triton"
    assert orch["depends_on"]["triton"]["condition"] == "service_healthy"
    assert any(v.endswith(":/data:ro") for v in orch["volumes"]), orch["volumes"]
    # Prometheus reads the config kept in the repository; Grafana its provisioning.
    prom_mounts = [v.split(":")[:2] for v in services["prometheus"]["volumes"]]
    assert ["./prometheus/prometheus.yml", "/etc/prometheus/prometheus.yml"] in prom_mounts
    graf_mounts = dict(v.split(":")[:2] for v in services["grafana"]["volumes"])
    assert graf_mounts["./grafana/provisioning"] == "/etc/grafana/provisioning"
    assert graf_mounts["./grafana/dashboards"] == "/var/lib/grafana/dashboards"


# ---------------------------------------------------------------------------- Dockerfiles


def _instructions(dockerfile: Path) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with continuation lines joined and comments dropped."""
    lines, current = [], ""
    for raw in dockerfile.read_text().splitlines():
        stripped = raw.strip()
        if not current and (not stripped or stripped.startswith("#")):
            continue
        if stripped.startswith("#"):
            continue  # a comment inside a continued instruction
        if stripped.endswith("\\"):
            current += stripped[:-1] + " "
            continue
        lines.append(current + stripped)
        current = ""
    out = []
    for line in lines:
        word, _, rest = line.partition(" ")
        out.append((word.upper(), rest.strip()))
    return out


def _copy_sources(dockerfile: Path) -> list[str]:
    """Sources of every COPY/ADD taken from the build context (not --from another stage)."""
    sources = []
    for word, args in _instructions(dockerfile):
        if word not in {"COPY", "ADD"}:
            continue
        parts = json.loads(args) if args.startswith("[") else shlex.split(args)
        flags = [p for p in parts if p.startswith("--")]
        if any(f.startswith("--from") for f in flags):
            continue
        paths = [p for p in parts if not p.startswith("--")]
        assert len(paths) >= 2, f"{dockerfile.name}: {word} {args}"
        sources.extend(paths[:-1])
    return sources


def _kept_by_dockerignore(source: str, ignore: Path) -> bool:
    """The ignore files here are `*` then `!path` lines: a source must be re-included."""
    patterns = [
        line.strip()
        for line in ignore.read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    assert patterns[0] == "*", f"{ignore.name} should start by excluding everything"
    kept = {p[1:].rstrip("/") for p in patterns if p.startswith("!")}
    parts = Path(source.rstrip("/")).parts
    return any("/".join(parts[:i]) in kept for i in range(1, len(parts) + 1))


@pytest.mark.parametrize("name", ["triton.Dockerfile", "orchestrator.Dockerfile"])
def test_dockerfile_copy_sources_exist(name):
    dockerfile = DOCKER / name
    ignore = DOCKER / f"{name}.dockerignore"
    sources = _copy_sources(dockerfile)
    assert sources, f"{name} copies nothing"
    for source in sources:
        assert (REPO / source).exists(), f"{name}: COPY source {source} is not in the repository"
        assert _kept_by_dockerignore(source, ignore), f"{ignore.name} drops {source}"


def test_triton_image_is_the_official_container_pinned():
    args = dict(
        a.split("=", 1)
        for w, a in _instructions(DOCKER / "triton.Dockerfile")
        if w == "ARG" and "=" in a
    )
    image = args["TRITON_IMAGE"]
    assert re.fullmatch(r"nvcr\.io/nvidia/tritonserver:(\d\d)\.(\d\d)-py3", image), image
    year = int(image.split(":")[1][:2])
    assert year >= 25, f"{image}: the embedded 2.51 (24.10) is for local use; pin a 2025+ release"


def test_triton_image_settings():
    instructions = _instructions(DOCKER / "triton.Dockerfile")
    # model.py imports tiktok_analyzer: the package goes into the interpreter the stub embeds.
    runs = " ".join(a for w, a in instructions if w == "RUN")
    assert "--break-system-packages --no-deps" in runs and "/tmp/src" in runs
    cmd = " ".join(a for w, a in instructions if w in {"CMD", "ENTRYPOINT"})
    for flag in ("--model-repository=/models", "--model-control-mode=explicit", "--load-model=*"):
        assert flag in cmd, f"tritonserver is not started with {flag}"
    health = " ".join(a for w, a in instructions if w == "HEALTHCHECK")
    assert "/v2/health/ready" in health


def _pins(lines: list[str]) -> dict[str, str]:
    pins = {}
    for line in lines:
        line = line.split("#")[0].strip()
        if line:
            name, _, version = line.partition("==")
            pins[re.sub(r"\[.*\]", "", name).lower()] = version
    return pins


def test_server_requirements_match_pyproject():
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    extras = [d for deps in project.get("optional-dependencies", {}).values() for d in deps]
    pyproject = _pins(project["dependencies"] + extras)
    server = _pins((DOCKER / "requirements-triton.txt").read_text().splitlines())
    assert server, "requirements-triton.txt pins nothing"
    assert int(server["numpy"].split(".")[0]) < 2, "the adapter refuses numpy >= 2"
    differ = {
        name: (version, pyproject.get(name))
        for name, version in server.items()
        if pyproject.get(name) != version
    }
    assert not differ, f"requirements-triton.txt vs pyproject.toml (server, project): {differ}"


def _orchestrator_args() -> tuple[list[str], list[str]]:
    instructions = dict(_instructions(DOCKER / "orchestrator.Dockerfile"))
    return json.loads(instructions["ENTRYPOINT"]), json.loads(instructions["CMD"])


def test_orchestrator_command(k8s_objects):
    entrypoint, cmd = _orchestrator_args()
    assert entrypoint == ["tiktok-analyzer", "serve"]
    flags = dict(zip(cmd[::2], cmd[1::2], strict=True))
    assert flags == {
        "--triton-url": "triton:8001",
        "--grpc-port": "50051",
        "--http-port": "8003",
        "--host": "0.0.0.0",
        "--allowed-root": "/data",
    }
    (deployment,) = [
        o
        for o in k8s_objects
        if o["kind"] == "Deployment" and o["metadata"]["name"] == "orchestrator"
    ]
    k8s_args = deployment["spec"]["template"]["spec"]["containers"][0]["args"]
    assert k8s_args == cmd, "the k8s orchestrator args drifted from the image's default"


def test_orchestrator_flags_are_accepted_by_serve(capsys):
    from tiktok_analyzer.cli import main

    with pytest.raises(SystemExit):
        main(["serve", "--help"])
    out = capsys.readouterr()
    if "invalid choice" in out.err:
        pytest.skip("`tiktok-analyzer serve` is not built yet")
    _, cmd = _orchestrator_args()
    unknown = [flag for flag in cmd[::2] if flag not in out.out]
    assert not unknown, f"`tiktok-analyzer serve` does not take {unknown}"


def test_wheel_carries_every_module_and_the_model_repository(tmp_path):
    """The images install the wheel, not the source tree: every module under src/, the
    model repository (configs and model.py files) and the weights manifest must be in it."""
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "-q",
            "--no-deps",
            "--no-build-isolation",
            "-w",
            str(tmp_path),
            str(REPO),
        ],
        check=True,
        capture_output=True,
    )
    (wheel,) = tmp_path.glob("tiktok_analyzer-*.whl")
    with zipfile.ZipFile(wheel) as zf:
        carried = set(zf.namelist())
    src = REPO / "src"
    wanted = [
        p.relative_to(src).as_posix()
        for pattern in ("*.py", "*.pbtxt", "*.toml", "*.csv")
        for p in src.rglob(pattern)
        if "__pycache__" not in p.parts
    ]
    assert any(w.endswith("cut_analysis/config.pbtxt") for w in wanted)
    missing = sorted(w for w in wanted if w not in carried)
    assert not missing, f"the wheel lacks {missing[:10]} ({len(missing)} files)"


# ---------------------------------------------------------------------------- Prometheus, Grafana


def test_prometheus_scrapes_both_services(compose):
    config = yaml.safe_load(PROMETHEUS_CONFIG.read_text())
    targets = {
        t for job in config["scrape_configs"] for sc in job["static_configs"] for t in sc["targets"]
    }
    assert targets == {"triton:8002", "orchestrator:8003"}
    assert all(
        job.get("metrics_path", "/metrics") == "/metrics" for job in config["scrape_configs"]
    )
    for target in targets:
        assert target.split(":")[0] in compose["services"], f"{target}: no such service"


@pytest.mark.skipif(
    shutil.which("promtool") is None, reason="promtool not installed (Debian package `prometheus`)"
)
def test_prometheus_config_passes_promtool():
    done = subprocess.run(
        ["promtool", "check", "config", str(PROMETHEUS_CONFIG)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_grafana_provisioning_points_at_the_dashboard(compose):
    (datasources,) = _load_all(DOCKER / "grafana/provisioning/datasources/prometheus.yaml")
    (source,) = datasources["datasources"]
    assert source["type"] == "prometheus"
    assert source["url"].split("//")[1].split(":")[0] in compose["services"]
    (providers,) = _load_all(DOCKER / "grafana/provisioning/dashboards/tiktok-analyzer.yaml")
    (provider,) = providers["providers"]
    assert provider["options"]["path"] == "/var/lib/grafana/dashboards"
    dashboard = json.loads(DASHBOARD.read_text())
    uids = {t["datasource"]["uid"] for p in _panels(dashboard) for t in p.get("targets", [])}
    assert uids == {source["uid"]}, "panels must use the provisioned datasource's uid"


def test_orchestrator_exports_the_documented_metrics():
    """The dashboard and this file's ORCHESTRATOR_METRICS against the service's real registry."""
    metrics = pytest.importorskip("tiktok_analyzer.service.metrics")
    exported = {}
    for family in metrics.Metrics().registry.collect():
        name = family.name + ("_total" if family.type == "counter" else "")
        exported[name] = family.type
    wrong = {
        name: (kind, exported.get(name))
        for name, kind in ORCHESTRATOR_METRICS.items()
        if exported.get(name) != kind
    }
    assert not wrong, f"documented (type, exported type): {wrong}; exported: {sorted(exported)}"


def test_dashboard_panels_each_have_a_query(dashboard):
    panels = [p for p in _panels(dashboard) if p["type"] != "row"]
    assert len(panels) >= 8
    ids = [p["id"] for p in _panels(dashboard)]
    assert len(ids) == len(set(ids)), "panel ids must be unique"
    for panel in panels:
        exprs = [t.get("expr", "").strip() for t in panel.get("targets", [])]
        assert exprs and all(exprs), f"panel {panel['title']!r} has no query"


@pytest.mark.parametrize(
    "metric",
    [
        # the Metrics section: each must be on the dashboard
        "tiktok_analyzer_analyses_total",
        "tiktok_analyzer_analyzer_seconds_bucket",
        "tiktok_analyzer_analyzer_failures_total",
        "tiktok_analyzer_realtime_factor_bucket",
        "tiktok_analyzer_queue_depth",
        "tiktok_analyzer_inflight_jobs",
        # Triton per model: request rate, queue time, failures
        "nv_inference_request_success",
        "nv_inference_queue_duration_us",
        "nv_inference_request_failure",
    ],
)
def test_dashboard_shows(dashboard, metric):
    used = {m for _, q in _dashboard_queries(dashboard) for m in METRIC_TOKEN.findall(q)}
    assert metric in used


def test_queries_use_only_exported_metrics(dashboard, adapter_rules):
    # An adapter rule's metricsQuery may name its series only as <<.Series>>: judge the rule
    # by its seriesQuery and metricsQuery together.
    rules = [
        (f"adapter rule {r['name']['as']}", f"{r['seriesQuery']}\n{r['metricsQuery']}")
        for r in adapter_rules
    ]
    queries = _dashboard_queries(dashboard) + rules
    unknown = [
        (where, m) for where, q in queries for m in METRIC_TOKEN.findall(q) if m not in KNOWN_SERIES
    ]
    assert not unknown, f"metric names nobody exports: {unknown}"
    without = [where for where, q in queries if not METRIC_TOKEN.search(q)]
    assert not without, f"queries that read no known metric: {without}"


def _as_promql(query: str) -> str:
    """Fill Grafana's variables and prometheus-adapter's templates with sample values."""
    for old, new in (
        ("$__rate_interval", "5m"),
        ("$model", ".*"),
        ("$analyzer", ".*"),
        ("<<.LabelMatchers>>", 'namespace="ns",pod="p"'),
        ("<<.GroupBy>>", "pod"),
        ("<<.Series>>", "nv_inference_pending_request_count"),
    ):
        query = query.replace(old, new)
    return query


@pytest.mark.skipif(
    shutil.which("promtool") is None, reason="promtool not installed (Debian package `prometheus`)"
)
def test_queries_are_valid_promql(dashboard, adapter_rules, tmp_path):
    queries = [
        q
        for _, q in _dashboard_queries(dashboard) + _adapter_queries(adapter_rules)
        if not q.startswith("label_values(")
    ]  # a Grafana function, not PromQL
    rules = {
        "groups": [
            {
                "name": "queries",
                "rules": [
                    {"record": f"check:query_{i}", "expr": _as_promql(q)}
                    for i, q in enumerate(queries)
                ],
            }
        ]
    }
    path = tmp_path / "rules.yml"
    path.write_text(yaml.safe_dump(rules))
    done = subprocess.run(
        ["promtool", "check", "rules", str(path)], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stdout + done.stderr


# ---------------------------------------------------------------------------- Kubernetes


def test_kustomization_resources_exist():
    kustomization = yaml.safe_load((K8S / "kustomization.yaml").read_text())
    listed = set(kustomization["resources"])
    assert all((K8S / name).is_file() for name in listed)
    on_disk = {p.name for p in K8S.glob("*.yaml")} - {"kustomization.yaml"}
    assert listed == on_disk, f"not in kustomization: {on_disk - listed}"


def test_k8s_objects_are_named_and_namespaced(k8s_objects):
    for obj in k8s_objects:
        assert obj.get("apiVersion") and obj.get("kind"), obj
        assert obj["metadata"].get("name"), obj
        if obj["kind"] != "Namespace":
            assert obj["metadata"].get("namespace"), f"{obj['kind']} {obj['metadata']['name']}"


def _find(objects: list[dict], kind: str, name: str) -> dict:
    found = [o for o in objects if o["kind"] == kind and o["metadata"]["name"] == name]
    assert len(found) == 1, f"{kind}/{name}: {len(found)} found"
    return found[0]


def _selects(selector: dict, labels: dict) -> bool:
    return all(labels.get(k) == v for k, v in selector.items())


def test_services_and_budgets_select_a_deployment(k8s_objects):
    deployments = [o for o in k8s_objects if o["kind"] in ("Deployment", "StatefulSet")]
    for obj in k8s_objects:
        if obj["kind"] == "Service":
            selector = obj["spec"]["selector"]
        elif obj["kind"] == "PodDisruptionBudget":
            selector = obj["spec"]["selector"]["matchLabels"]
        else:
            continue
        matches = [
            d
            for d in deployments
            if _selects(selector, d["spec"]["template"]["metadata"]["labels"])
        ]
        assert len(matches) == 1, f"{obj['kind']}/{obj['metadata']['name']} selects {len(matches)}"
        if obj["kind"] == "Service":  # named target ports exist on the container
            ports = {
                p["name"]
                for c in matches[0]["spec"]["template"]["spec"]["containers"]
                for p in c["ports"]
            }
            for port in obj["spec"]["ports"]:
                assert port["targetPort"] in ports, f"{obj['metadata']['name']}: {port}"
    for deployment in deployments:
        spec = deployment["spec"]
        assert _selects(spec["selector"]["matchLabels"], spec["template"]["metadata"]["labels"])
    budgets = {o["metadata"]["name"] for o in k8s_objects if o["kind"] == "PodDisruptionBudget"}
    assert budgets >= {"triton", "orchestrator"}


def test_triton_deployment(k8s_objects):
    pod = _find(k8s_objects, "Deployment", "triton")["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    # One Triton per GPU (docs/DESIGN.md, Several GPUs): each pod is one card's server, so
    # it asks for exactly one and its command names none; more cards are more replicas.
    resources = container["resources"]
    assert resources["requests"]["nvidia.com/gpu"] == resources["limits"]["nvidia.com/gpu"] == 1
    assert not any("gpus" in a for a in container.get("args", []) + container.get("command", []))
    volumes = {v["name"]: v for v in pod["volumes"]}
    (shm,) = [m for m in container["volumeMounts"] if m["mountPath"] == "/dev/shm"]
    assert volumes[shm["name"]]["emptyDir"]["medium"] == "Memory"
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert ports == {"http": 8000, "grpc": 8001, "metrics": 8002}
    probes = {
        kind: container[kind]["httpGet"]
        for kind in ("startupProbe", "readinessProbe", "livenessProbe")
    }
    assert probes["readinessProbe"]["path"] == "/v2/health/ready"
    assert probes["livenessProbe"]["path"] == "/v2/health/live"
    assert all(p["port"] in ports for p in probes.values())


def test_orchestrator_deployment(k8s_objects):
    pod = _find(k8s_objects, "Deployment", "orchestrator")["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    ports = {p["name"] for p in container["ports"]}
    assert container["readinessProbe"]["httpGet"]["port"] in ports
    assert container["livenessProbe"]["tcpSocket"]["port"] in ports
    (data,) = [m for m in container["volumeMounts"] if m["mountPath"] == "/data"]
    assert data["readOnly"] is True
    claims = {
        v["persistentVolumeClaim"]["claimName"]
        for v in pod["volumes"]
        if "persistentVolumeClaim" in v
    }
    for claim in claims:
        _find(k8s_objects, "PersistentVolumeClaim", claim)


def test_autoscaler_scales_triton_on_adapter_metrics(k8s_objects, adapter_rules):
    hpa = _find(k8s_objects, "HorizontalPodAutoscaler", "triton")
    assert hpa["apiVersion"] == "autoscaling/v2"
    target = hpa["spec"]["scaleTargetRef"]
    _find(k8s_objects, target["kind"], target["name"])
    assert 1 <= hpa["spec"]["minReplicas"] <= hpa["spec"]["maxReplicas"]
    served = {rule["name"]["as"]: rule for rule in adapter_rules}
    used = [m["pods"]["metric"]["name"] for m in hpa["spec"]["metrics"] if m["type"] == "Pods"]
    assert used and set(used) <= set(served), f"HPA metrics {used}, adapter serves {set(served)}"
    queue = [
        name
        for name in used
        if "nv_inference_queue_duration_us"
        in served[name]["seriesQuery"] + served[name]["metricsQuery"]
    ]
    assert queue, "no autoscaler metric is built on Triton's queue time"
    for rule in adapter_rules:  # per-pod metrics need the pod and namespace labels
        assert set(rule["resources"]["overrides"]) == {"namespace", "pod"}
        assert "<<.LabelMatchers>>" in rule["metricsQuery"]
        assert "<<.GroupBy>>" in rule["metricsQuery"]


# ---------------------------------------------------------------------------- the job store


def _env(container: dict) -> dict[str, dict]:
    return {e["name"]: e for e in container.get("env", [])}


def test_k8s_orchestrator_uses_the_shared_postgres(k8s_objects):
    """The orchestrator's --job-store (through its environment, so the args stay the image's)
    names the postgres Service on its port, as the user and database the server creates,
    with the password from the same Secret key the server reads."""
    from urllib.parse import urlsplit

    pod = _find(k8s_objects, "Deployment", "orchestrator")["spec"]["template"]["spec"]
    env = _env(pod["containers"][0])
    url = urlsplit(env["TIKTOK_ANALYZER_JOB_STORE"]["value"])
    assert url.scheme == "postgresql" and url.password is None, "no password in the URL"
    service = _find(k8s_objects, "Service", url.hostname)
    assert url.port in {p["port"] for p in service["spec"]["ports"]}
    db = _find(k8s_objects, "StatefulSet", url.hostname)
    assert _selects(service["spec"]["selector"], db["spec"]["template"]["metadata"]["labels"])
    (server,) = db["spec"]["template"]["spec"]["containers"]
    server_env = _env(server)
    assert server_env["POSTGRES_USER"]["value"] == url.username
    assert server_env["POSTGRES_DB"]["value"] == url.path.lstrip("/")
    ours = env["PGPASSWORD"]["valueFrom"]["secretKeyRef"]
    assert server_env["POSTGRES_PASSWORD"]["valueFrom"]["secretKeyRef"] == ours
    secret = _find(k8s_objects, "Secret", ours["name"])
    assert ours["key"] in secret.get("stringData", {}) | secret.get("data", {})
    # the data lives on a claim of its own, under the folder PGDATA names
    (template,) = db["spec"]["volumeClaimTemplates"]
    (mount,) = [m for m in server["volumeMounts"] if m["name"] == template["metadata"]["name"]]
    assert server_env["PGDATA"]["value"].startswith(mount["mountPath"] + "/")
    assert server["readinessProbe"]["exec"]["command"][0] == "pg_isready"
    assert db["spec"]["serviceName"] == service["metadata"]["name"]


def test_compose_orchestrator_uses_the_postgres_service(compose):
    from urllib.parse import urlsplit

    services = compose["services"]
    orch, db = services["orchestrator"], services["postgres"]
    url = urlsplit(orch["environment"]["TIKTOK_ANALYZER_JOB_STORE"])
    assert url.scheme == "postgresql" and url.password is None
    assert url.hostname in services and url.hostname == "postgres"
    assert db["environment"]["POSTGRES_USER"] == url.username
    assert db["environment"]["POSTGRES_DB"] == url.path.lstrip("/")
    assert orch["environment"]["PGPASSWORD"] == db["environment"]["POSTGRES_PASSWORD"]
    assert orch["depends_on"]["postgres"]["condition"] == "service_healthy"
    assert "pg_isready" in db["healthcheck"]["test"]
    assert "ports" not in db, "the job store is for the orchestrator only"
    (data,) = [v for v in db["volumes"] if v.endswith(":/var/lib/postgresql/data")]
    assert data.split(":")[0] in compose["volumes"]


def test_serve_documents_the_job_store_flags(capsys):
    from tiktok_analyzer.cli import main

    with pytest.raises(SystemExit):
        main(["serve", "--help"])
    out = " ".join(capsys.readouterr().out.split())
    assert "--state-dir DIR" in out and "--job-store URL" in out
    assert "TIKTOK_ANALYZER_JOB_STORE" in out and "~/.local/state/tiktok-analyzer" in out
