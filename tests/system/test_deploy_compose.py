"""The deployment files: docker-compose.yml, the Dockerfiles, env file templates, the Dagster
instance for the stack. Parsed and checked statically; `docker compose config` runs where a
compose client exists (skipped otherwise); the Triton service's model layout is started for
real on CPU when the Triton env exists (slow)."""

from __future__ import annotations

import json
import os
import re
import shutil
import stat
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from testsupport.paths import REPO

COMPOSE = REPO / "docker-compose.yml"
DOCKERFILE = REPO / "Dockerfile"
TRITON_DOCKERFILE = REPO / "deploy" / "triton" / "Dockerfile"
ENV_DIR = REPO / "deploy" / "env"
MODEL_REPO = REPO / "deploy" / "triton" / "model_repository"

EXPECTED_SERVICES = {
    "etcd",
    "minio",
    "milvus",
    "postgres",
    "triton",
    "embedder-model",
    "govrag-init",
    "dagster-code",
    "dagster-webserver",
    "dagster-daemon",
    "retrieval",
}
ONE_SHOT = {"embedder-model", "govrag-init"}
GOVRAG_SERVICES = {"govrag-init", "dagster-code", "dagster-webserver", "dagster-daemon", "retrieval"}
SECRET_NAME = re.compile(r"PASSWORD|SECRET|KEY|TOKEN|CREDENTIAL", re.I)


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return yaml.safe_load(COMPOSE.read_text())


@pytest.fixture(scope="module")
def services(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return compose["services"]


def _env(service: dict[str, Any]) -> dict[str, str]:
    env = service.get("environment") or {}
    if isinstance(env, list):
        env = dict(item.split("=", 1) if "=" in item else (item, "") for item in env)
    return {str(k): "" if v is None else str(v) for k, v in env.items()}


def _env_files(service: dict[str, Any]) -> list[str]:
    files = service.get("env_file") or []
    if isinstance(files, (str, dict)):
        files = [files]
    return [f["path"] if isinstance(f, dict) else f for f in files]


def _read_env_file(path: Path) -> dict[str, str]:
    out = {}
    for line in path.read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#") and "=" in line:
            key, value = line.split("=", 1)
            out[key.strip()] = value.strip()
    return out


def _volumes(service: dict[str, Any]) -> list[tuple[str, str, bool]]:
    """(source, target, read_only) of every volume entry, short or long syntax."""
    out = []
    for v in service.get("volumes") or []:
        if isinstance(v, dict):
            out.append((str(v.get("source", "")), str(v["target"]), bool(v.get("read_only"))))
            continue
        parts = v.split(":")
        if v.startswith("${"):  # "${VAR:-default}:/target[:ro]": the default holds a colon (and may nest)
            depth, end = 0, 0
            for i, ch in enumerate(v):
                depth += {"{": 1, "}": -1}.get(ch, 0)
                if ch == "}" and depth == 0:
                    end = i + 1
                    break
            parts = [v[:end], *v[end + 1 :].split(":")]
        out.append((parts[0], parts[1], len(parts) > 2 and "ro" in parts[2].split(",")))
    return out


def _is_named_volume(source: str) -> bool:
    return bool(source) and not source.startswith((".", "/", "~", "${"))


def _one_shot(name: str, service: dict[str, Any]) -> bool:
    return str(service.get("restart", "no")) == "no" and name in ONE_SHOT


# --------------------------------------------------------------------------- services


def test_expected_services_exist(services: dict[str, Any]) -> None:
    assert set(services) >= EXPECTED_SERVICES, EXPECTED_SERVICES - set(services)


def test_long_running_services_have_healthchecks(services: dict[str, Any]) -> None:
    for name, svc in services.items():
        if name in ONE_SHOT:
            assert str(svc.get("restart")) == "no", f"{name} is one-shot: restart must be 'no'"
            continue
        hc = svc.get("healthcheck")
        assert hc and not hc.get("disable") and hc.get("test"), f"{name} has no healthcheck"
        assert svc.get("restart") in ("unless-stopped", "always", "on-failure"), f"{name}: restart policy"


def test_images_pinned(services: dict[str, Any]) -> None:
    for name, svc in services.items():
        image = svc.get("image")
        assert image, f"{name}: no image (services that build must still name a tagged image)"
        if "@sha256:" in image:
            continue
        last = image.rsplit("/", 1)[-1]
        assert ":" in last, f"{name}: image {image} has no tag"
        tag = last.split(":", 1)[1]
        assert tag and tag != "latest" and "$" not in tag, f"{name}: image {image} is not pinned"
    # the images govrag builds come from pinned bases too
    for dockerfile in (DOCKERFILE, TRITON_DOCKERFILE):
        text = dockerfile.read_text()
        args = dict(re.findall(r"^ARG (\w+)=(\S+)", text, re.M))
        for base in re.findall(r"^FROM (\S+)", text, re.M):
            base = re.sub(r"\$\{(\w+)\}", lambda m, args=args: args.get(m.group(1), m.group(0)), base)
            assert ":" in base.rsplit("/", 1)[-1] and not base.endswith(":latest"), f"{dockerfile.name}: {base}"
            assert "$" not in base, f"{dockerfile.name}: FROM {base} has no pinned default"


def test_triton_is_the_ngc_image_pinned(services: dict[str, Any]) -> None:
    triton = services["triton"]
    ngc = triton["build"]["args"]["TRITON_IMAGE"]
    assert re.fullmatch(r"nvcr\.io/nvidia/tritonserver:\d{2}\.\d{2}-py3", ngc), ngc
    default = re.search(r"^ARG TRITON_IMAGE=(\S+)", TRITON_DOCKERFILE.read_text(), re.M).group(1)
    assert default == ngc, "compose and deploy/triton/Dockerfile name different Triton releases"
    assert triton["image"].split(":")[1] == ngc.split(":")[1].removesuffix("-py3")


def test_no_inline_secrets(compose: dict[str, Any], services: dict[str, Any]) -> None:
    for name, svc in services.items():
        for key, value in _env(svc).items():
            assert not SECRET_NAME.search(key), f"{name}: secret {key} set inline; use an env_file"
            assert not re.search(r"://[^/\s:@]+:[^/\s@]+@", value), f"{name}: {key} carries a password"
    # nor smuggled in through interpolation or a command line
    raw = COMPOSE.read_text()
    assert not re.search(r"\$\{[^}]*(PASSWORD|SECRET|TOKEN)[^}]*\}", raw), "secret interpolated into the file"
    for name, svc in services.items():
        cmd = svc.get("command") or []
        cmd = " ".join(cmd) if isinstance(cmd, list) else str(cmd)
        assert not re.search(r"password|secret", cmd, re.I), f"{name}: secret on the command line"


def test_env_files_exist_as_examples_and_are_ignored(services: dict[str, Any]) -> None:
    used = set()
    for name, svc in services.items():
        for f in _env_files(svc):
            path = REPO / f
            assert path.parent == ENV_DIR, f"{name}: env file {f} outside deploy/env"
            assert Path(str(path) + ".example").is_file(), f"{name}: no template {f}.example"
            used.add(path.name)
    assert {"postgres.env", "minio.env", "govrag.env"} <= used
    for svc_name in GOVRAG_SERVICES:
        assert "deploy/env/govrag.env" in _env_files(services[svc_name]), svc_name
    gitignore = (REPO / ".gitignore").read_text().splitlines()
    assert "deploy/env/*.env" in gitignore
    if shutil.which("git") and (REPO / ".git").exists():
        for name in used:
            rc = subprocess.run(["git", "check-ignore", "-q", f"deploy/env/{name}"], cwd=REPO).returncode
            assert rc == 0, f"deploy/env/{name} is not git-ignored"
            rc = subprocess.run(["git", "check-ignore", "-q", f"deploy/env/{name}.example"], cwd=REPO).returncode
            assert rc == 1, f"deploy/env/{name}.example must be committed"


def test_env_examples_hold_what_the_stack_needs() -> None:
    pg = _read_env_file(ENV_DIR / "postgres.env.example")
    minio = _read_env_file(ENV_DIR / "minio.env.example")
    govrag = _read_env_file(ENV_DIR / "govrag.env.example")
    assert {"POSTGRES_PASSWORD", "GOVRAG_DB_PASSWORD", "DAGSTER_PG_PASSWORD"} <= set(pg)
    assert {"MINIO_ROOT_USER", "MINIO_ROOT_PASSWORD", "MINIO_ACCESS_KEY_ID", "MINIO_SECRET_ACCESS_KEY"} <= set(minio)
    assert minio["MINIO_ROOT_USER"] == minio["MINIO_ACCESS_KEY_ID"]
    assert minio["MINIO_ROOT_PASSWORD"] == minio["MINIO_SECRET_ACCESS_KEY"]
    url = govrag["GOVRAG_DATABASE_URL"]
    m = re.fullmatch(r"postgresql\+psycopg://govrag:([^@]+)@postgres:5432/govrag", url)
    assert m, url
    assert m.group(1) == pg["GOVRAG_DB_PASSWORD"], "catalog password differs between the templates"
    assert govrag["DAGSTER_PG_PASSWORD"] == pg["DAGSTER_PG_PASSWORD"]
    # every GOVRAG_* name the template mentions, set or commented out, is a real setting
    from governance.settings import Settings

    fields = {f"GOVRAG_{k.upper()}" for k in Settings.model_fields}
    mentioned = set(re.findall(r"^#?\s*(GOVRAG_\w+)=", (ENV_DIR / "govrag.env.example").read_text(), re.M))
    assert {"GOVRAG_DATABASE_URL", "GOVRAG_JWKS_URL", "GOVRAG_JWT_ISSUER", "GOVRAG_JWT_AUDIENCE"} <= mentioned
    assert mentioned <= fields, mentioned - fields
    for values in (pg, minio, govrag):  # templates hold placeholders, never a real-looking secret
        for key, value in values.items():
            if re.search(r"PASSWORD|SECRET", key):
                assert "change-me" in value, f"{key} in a template must be a change-me placeholder"


def test_generate_env_files(tmp_path: Path) -> None:
    if not shutil.which("bash"):
        pytest.skip("no bash")
    for f in ENV_DIR.glob("*.env.example"):
        shutil.copy2(f, tmp_path / f.name)
    shutil.copy2(ENV_DIR / "generate.sh", tmp_path / "generate.sh")
    subprocess.run(["bash", str(tmp_path / "generate.sh")], check=True, capture_output=True)
    pg = _read_env_file(tmp_path / "postgres.env")
    minio = _read_env_file(tmp_path / "minio.env")
    govrag = _read_env_file(tmp_path / "govrag.env")
    for name in ("postgres.env", "minio.env", "govrag.env"):
        assert not any("change-me" in v for v in _read_env_file(tmp_path / name).values())
        assert stat.S_IMODE((tmp_path / name).stat().st_mode) & 0o077 == 0, f"{name} readable by others"
    secrets = [
        pg["POSTGRES_PASSWORD"],
        pg["GOVRAG_DB_PASSWORD"],
        pg["DAGSTER_PG_PASSWORD"],
        minio["MINIO_ROOT_PASSWORD"],
    ]
    assert len(set(secrets)) == 4 and all(re.fullmatch(r"[0-9a-f]{48}", s) for s in secrets)
    assert (
        govrag["GOVRAG_DATABASE_URL"] == f"postgresql+psycopg://govrag:{pg['GOVRAG_DB_PASSWORD']}@postgres:5432/govrag"
    )
    assert govrag["DAGSTER_PG_PASSWORD"] == pg["DAGSTER_PG_PASSWORD"]
    assert minio["MINIO_SECRET_ACCESS_KEY"] == minio["MINIO_ROOT_PASSWORD"]
    again = subprocess.run(["bash", str(tmp_path / "generate.sh")], capture_output=True, text=True)
    assert again.returncode != 0 and "not overwriting" in again.stderr
    assert _read_env_file(tmp_path / "postgres.env") == pg


def test_published_ports_bind_loopback(services: dict[str, Any]) -> None:
    published = {}
    for name, svc in services.items():
        for port in svc.get("ports") or []:
            if isinstance(port, dict):
                host_ip, target = port.get("host_ip"), port["target"]
            else:
                parts = str(port).split(":")
                assert len(parts) == 3, f"{name}: port {port} does not name a host address"
                host_ip, target = parts[0], parts[2]
            assert host_ip == "127.0.0.1", f"{name}: port {port} binds {host_ip}"
            published.setdefault(name, set()).add(int(str(target).split("/")[0]))
    assert published["retrieval"] == {8080}
    assert published["dagster-webserver"] == {3000}
    assert 19530 in published["milvus"] and 8001 in published["triton"]
    for internal in ("etcd", "minio", "dagster-code", "dagster-daemon"):
        assert internal not in published, f"{internal} needs no published port"


def test_volumes_declared(compose: dict[str, Any], services: dict[str, Any]) -> None:
    declared = set(compose.get("volumes") or {})
    used = set()
    for name, svc in services.items():
        for source, target, _ in _volumes(svc):
            if _is_named_volume(source):
                assert source in declared, f"{name}: volume {source} not declared"
                used.add(source)
    assert declared == used, f"declared but unused: {declared - used}"
    data_paths = {
        "etcd": "/etcd",
        "minio": "/minio_data",
        "milvus": "/var/lib/milvus",
        "postgres": "/var/lib/postgresql/data",
    }
    for name, path in data_paths.items():
        mounts = {t: s for s, t, _ in _volumes(services[name])}
        assert _is_named_volume(mounts.get(path, "")), f"{name}: {path} is not on a named volume"


def _flatten(tree: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in tree.items():
        dotted = f"{prefix}{key}"
        out.update(_flatten(value, dotted + ".") if isinstance(value, dict) else {dotted: value})
    return out


def test_milvus_runs_with_the_strict_erasure_settings_the_server_test_measures(services: dict[str, Any]) -> None:
    """deploy/milvus/strict-erasure.yaml is Milvus's user.yaml by default and holds exactly
    STRICT_ERASURE_CONFIG, which tests/system/test_server_erasure_disk.py measures on a server."""
    from governance.milvus_process.erasure_config import STRICT_ERASURE_CONFIG

    mounts = {t: (s, ro) for s, t, ro in _volumes(services["milvus"])}
    source, read_only = mounts["/milvus/configs/user.yaml"]
    assert read_only
    default = re.fullmatch(r"\$\{GOVRAG_MILVUS_USER_YAML:-(.+)\}", source)
    assert default and default.group(1) == "./deploy/milvus/strict-erasure.yaml", source
    strict = yaml.safe_load((REPO / default.group(1)).read_text())
    assert _flatten(strict) == STRICT_ERASURE_CONFIG
    # the documented way back to Milvus's own defaults: an override that overrides nothing
    assert yaml.safe_load((REPO / "deploy" / "milvus" / "milvus-defaults.yaml").read_text()) == {}


def test_triton_gpu_reservation_and_model_repository(services: dict[str, Any]) -> None:
    triton = services["triton"]
    devices = triton["deploy"]["resources"]["reservations"]["devices"]
    assert any(d.get("driver") == "nvidia" and "gpu" in d.get("capabilities", []) for d in devices)
    mounts = {s: (t, ro) for s, t, ro in _volumes(triton)}
    target, read_only = mounts["./deploy/triton/model_repository"]
    assert read_only, "the model repository is mounted read-only"
    command = triton["command"]
    assert command[0] == "tritonserver"
    assert f"--model-repository={target}" in command
    # the GPU config is a custom config next to the CPU default (which is not modified)
    names = [a.split("=", 1)[1] for a in command if a.startswith("--model-config-name=")]
    assert names == ["gpu"]
    gpu_cfg = (MODEL_REPO / "govrag_embedder" / "configs" / "gpu.pbtxt").read_text()
    assert "kind: KIND_GPU" in gpu_cfg and 'name: "govrag_embedder"' in gpu_cfg
    assert "kind: KIND_CPU" in (MODEL_REPO / "govrag_embedder" / "config.pbtxt").read_text()
    # model.py finds nvfp4.py in the govrag source tree above it: the image puts it there
    copied = re.search(r"^COPY embedding/nvfp4.py (\S+)", TRITON_DOCKERFILE.read_text(), re.M).group(1)
    root = Path(copied).parents[2]
    assert root in Path(target).parents, f"{copied} is not in a tree above {target}"
    # the NVFP4 weights: a volume the one-shot quantize service fills
    model_dir = _env(triton)["GOVRAG_NVFP4_MODEL_DIR"]
    vol = next(s for s, t, ro in _volumes(triton) if Path(t) in Path(model_dir).parents and ro)
    writer = services["embedder-model"]
    assert any(s == vol for s, _, _ in _volumes(writer))
    assert triton["depends_on"]["embedder-model"]["condition"] == "service_completed_successfully"
    assert triton.get("shm_size"), "the Python backend needs more than Docker's 64 MB /dev/shm"


def test_depends_on(services: dict[str, Any]) -> None:
    for name, svc in services.items():
        deps = svc.get("depends_on") or {}
        assert isinstance(deps, dict), f"{name}: depends_on needs conditions (long syntax)"
        for target, cond in deps.items():
            assert target in services, f"{name} depends on unknown {target}"
            condition = cond.get("condition")
            if _one_shot(target, services[target]):
                assert condition == "service_completed_successfully", f"{name} -> {target}"
            elif services[target].get("healthcheck"):
                assert condition == "service_healthy", f"{name} -> {target}: {condition}"
    # no cycles
    state: dict[str, int] = {}

    def visit(n: str) -> None:
        assert state.get(n) != 1, f"dependency cycle through {n}"
        if state.get(n) == 2:
            return
        state[n] = 1
        for t in services[n].get("depends_on") or {}:
            visit(t)
        state[n] = 2

    for n in services:
        visit(n)
    for name in ("retrieval", "dagster-code"):
        assert {"postgres", "milvus", "triton", "govrag-init"} <= set(services[name]["depends_on"])


def test_govrag_wiring(services: dict[str, Any]) -> None:
    for name in GOVRAG_SERVICES:
        svc = services[name]
        env = _env(svc)
        assert env["GOVRAG_MILVUS_URI"] == "http://milvus:19530"
        assert env["GOVRAG_EMBEDDER"] == "triton"
        assert env["GOVRAG_TRITON_URL"] == "triton:8001"
        assert "GOVRAG_DATABASE_URL" not in env, "the catalog URL holds a password: env file only"
        assert svc["image"] == services["retrieval"]["image"], "one govrag image for all"
        assert svc["build"]["dockerfile"] == "Dockerfile"
        targets = {t for _, t, _ in _volumes(svc)}
        assert env["GOVRAG_POLICY"] in targets and env["GOVRAG_DROP_DIR"] in targets
        assert env["DAGSTER_HOME"] + "/dagster.yaml" in targets
    # the names the settings read exist (governance/settings.py)
    from governance.settings import Settings

    fields = {f"GOVRAG_{k.upper()}" for k in Settings.model_fields}
    for name in GOVRAG_SERVICES:
        for key in _env(services[name]):
            if key.startswith("GOVRAG_"):
                assert key in fields, f"{name}: {key} is not a govrag setting"
    assert "GOVRAG_DATABASE_URL" in fields
    retrieval = services["retrieval"]["command"]
    assert retrieval[:3] == ["govrag", "api", "serve"]
    assert retrieval[retrieval.index("--host") + 1] == "0.0.0.0"
    assert retrieval[retrieval.index("--port") + 1] == "8080"
    assert "/healthz" in " ".join(services["retrieval"]["healthcheck"]["test"])


def test_dagster_processes_and_workspace(services: dict[str, Any]) -> None:
    code = services["dagster-code"]["command"]
    assert code[:3] == ["dagster", "api", "grpc"]
    assert code[code.index("-m") + 1] == "dagster_project"
    port = int(code[code.index("-p") + 1])
    assert code[code.index("-h") + 1] == "0.0.0.0"
    workspace = yaml.safe_load((REPO / "deploy" / "dagster" / "workspace.yaml").read_text())
    grpc = workspace["load_from"][0]["grpc_server"]
    assert grpc["host"] == "dagster-code" and int(grpc["port"]) == port
    assert grpc["location_name"] == code[code.index("--location-name") + 1]
    assert "grpc-health-check" in services["dagster-code"]["healthcheck"]["test"]
    assert services["dagster-daemon"]["command"][:2] == ["dagster-daemon", "run"]
    assert "liveness-check" in services["dagster-daemon"]["healthcheck"]["test"]
    assert services["dagster-webserver"]["command"][0] == "dagster-webserver"
    for name in ("dagster-webserver", "dagster-daemon"):
        cmd = services[name]["command"]
        assert cmd[cmd.index("-w") + 1] == "/opt/dagster/home/workspace.yaml"


def test_dagster_instance_config(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, services: dict[str, Any]) -> None:
    pytest.importorskip("dagster")
    from dagster._core.instance.config import dagster_instance_config

    shutil.copy2(REPO / "deploy" / "dagster" / "dagster.yaml", tmp_path / "dagster.yaml")
    env = _env(services["dagster-daemon"])
    for key in ("DAGSTER_PG_HOST", "DAGSTER_PG_DB", "DAGSTER_PG_USER"):
        monkeypatch.setenv(key, env[key])
    monkeypatch.setenv("DAGSTER_PG_PASSWORD", "x")
    config, _ = dagster_instance_config(str(tmp_path))  # validates against Dagster's schema
    pg = config["storage"]["postgres"]["postgres_db"]
    assert pg["password"] == {"env": "DAGSTER_PG_PASSWORD"}
    assert pg["scheme"] == "postgresql+psycopg2"
    assert config["run_coordinator"]["class"] == "QueuedRunCoordinator"
    assert config["run_coordinator"]["config"]["max_concurrent_runs"] >= 1
    assert config["run_launcher"]["class"] == "DefaultRunLauncher"
    assert config["telemetry"]["enabled"] is False
    # storage dirs live on the volume the code location and the webserver share
    shared = {t for s, t, _ in _volumes(services["dagster-code"]) if s == "dagster-storage"}
    assert shared == {t for s, t, _ in _volumes(services["dagster-webserver"]) if s == "dagster-storage"}
    base = config["compute_logs"]["config"]["base_dir"]
    assert any(Path(t) == Path(base) or Path(t) in Path(base).parents for t in shared)


def test_postgres_init_creates_what_the_services_use(services: dict[str, Any]) -> None:
    script = REPO / "deploy" / "postgres" / "initdb.d" / "10-govrag-databases.sh"
    mounts = {s: t for s, t, _ in _volumes(services["postgres"])}
    assert mounts["./deploy/postgres/initdb.d"] == "/docker-entrypoint-initdb.d"
    text = script.read_text()
    env = _env(services["dagster-daemon"])
    assert f"CREATE DATABASE {env['DAGSTER_PG_DB']} OWNER {env['DAGSTER_PG_USER']}" in text
    assert "CREATE DATABASE govrag OWNER govrag" in text
    for role in re.findall(r"^CREATE ROLE .*$", text, re.M):
        assert not re.search(r"SUPERUSER|CREATEROLE|CREATEDB|BYPASSRLS", role, re.I), role
    if shutil.which("bash"):
        subprocess.run(["bash", "-n", str(script)], check=True)


# --------------------------------------------------------------------------- Dockerfiles


def _instructions(path: Path) -> list[str]:
    """Dockerfile instructions with continuation lines joined, comments dropped."""
    out, cur = [], ""
    for line in path.read_text().splitlines():
        if not cur and line.lstrip().startswith("#"):
            continue
        cur += line.rstrip("\\").rstrip() + " " if line.rstrip().endswith("\\") else line
        if not line.rstrip().endswith("\\"):
            if cur.strip():
                out.append(cur.strip())
            cur = ""
    return out


def test_dockerfile_installs_cpu_torch_first_and_no_unstructured_pdf() -> None:
    text = DOCKERFILE.read_text()
    assert not any("unstructured[pdf]" in x for x in _instructions(DOCKERFILE))
    runs = [i for i in _instructions(DOCKERFILE) if i.startswith("RUN ")]
    torch_i = next(i for i, r in enumerate(runs) if "pip install" in r and "torch==2.13.0" in r)
    assert "whl/cpu" in text, "the CPU wheel index is the default"
    inference_i = next(i for i, r in enumerate(runs) if "unstructured-inference" in r)
    assert "--no-deps" in runs[inference_i]
    deps_i = next(i for i, r in enumerate(runs) if re.search(r"pip install -r", r))
    project_i = next(i for i, r in enumerate(runs) if re.search(r"pip install .*(/src|\s\.)(\s|$)", r))
    assert torch_i < inference_i < deps_i < project_i
    assert "--no-deps" in runs[project_i]
    assert any("+cpu" in r for r in runs[project_i:]), "the build checks that torch is still the CPU build"


def test_dockerfile_runs_as_non_root_and_bakes_no_secret() -> None:
    instructions = _instructions(DOCKERFILE)
    froms = [i for i, x in enumerate(instructions) if x.startswith("FROM ")]
    assert len(froms) >= 2, "multi-stage build"
    users = [x.split()[1] for x in instructions[froms[-1] :] if x.startswith("USER ")]
    assert users and users[-1].split(":")[0] not in ("root", "0")
    for x in instructions:
        if x.startswith(("ENV ", "ARG ")):
            names = re.findall(r"(\w+)=", x) or [x.split()[1]]
            assert not any(SECRET_NAME.search(n) for n in names), x
        assert not x.startswith("COPY deploy/env"), x
    triton_users = [x.split()[1] for x in _instructions(TRITON_DOCKERFILE) if x.startswith("USER ")]
    assert triton_users and triton_users[-1] not in ("root", "0")


def test_dockerignore_keeps_secrets_and_local_state_out() -> None:
    patterns = {
        line.strip()
        for line in (REPO / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    }
    for needed in ("deploy/env/", "**/*.env", ".venv/", ".git/", ".govrag/"):
        assert needed in patterns, needed
    # what the Dockerfiles COPY must not be ignored
    for x in _instructions(DOCKERFILE) + _instructions(TRITON_DOCKERFILE):
        if x.startswith("COPY ") and "--from=" not in x:
            for src in [a for a in x.split()[1:-1] if not a.startswith("--")]:
                assert (REPO / src).exists(), src
                assert src.split("/")[0] + "/" not in patterns and src not in patterns, src


# --------------------------------------------------------------------------- compose client


def _compose_cmd() -> list[str] | None:
    if shutil.which("docker"):
        try:
            if subprocess.run(["docker", "compose", "version"], capture_output=True, timeout=30).returncode == 0:
                return ["docker", "compose"]
        except (OSError, subprocess.TimeoutExpired):
            pass
    return None


def test_docker_compose_config(tmp_path: Path) -> None:
    cmd = _compose_cmd()
    if cmd is None:
        pytest.skip("no `docker compose` client here")
    # a copy of the project with env files made from the templates (the real ones are
    # git-ignored and may not exist)
    shutil.copy2(COMPOSE, tmp_path / "docker-compose.yml")
    shutil.copytree(REPO / "deploy", tmp_path / "deploy", ignore=shutil.ignore_patterns("*.env", "__pycache__"))
    for example in ENV_DIR.glob("*.env.example"):
        shutil.copy2(example, tmp_path / "deploy" / "env" / example.name.removesuffix(".example"))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("COMPOSE_", "GOVRAG_"))}
    check = subprocess.run(
        [*cmd, "-f", "docker-compose.yml", "config", "-q"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert check.returncode == 0, check.stderr
    full = subprocess.run(
        [*cmd, "-f", "docker-compose.yml", "config", "--format", "json"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert full.returncode == 0, full.stderr
    model = json.loads(full.stdout)
    assert set(model["services"]) >= EXPECTED_SERVICES
    for name, svc in model["services"].items():  # as the engine will see them, anchors resolved
        for port in svc.get("ports") or []:
            assert port["host_ip"] == "127.0.0.1", (name, port)
    retrieval = model["services"]["retrieval"]["environment"]
    assert retrieval["GOVRAG_MILVUS_URI"] == "http://milvus:19530"
    assert retrieval["GOVRAG_DATABASE_URL"].startswith("postgresql+psycopg://govrag:")  # from the env file
    # without the env files the stack refuses to start rather than run without secrets
    (tmp_path / "deploy" / "env" / "govrag.env").unlink()
    missing = subprocess.run(
        [*cmd, "-f", "docker-compose.yml", "config", "-q"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert missing.returncode != 0 and "govrag.env" in missing.stderr


# --------------------------------------------------------------------------- Triton layout


def test_model_py_finds_nvfp4_where_the_triton_image_puts_it(tmp_path: Path, services: dict[str, Any]) -> None:
    """In the container the repository is mounted unrendered (no nvfp4.py beside model.py);
    model.py must find the copy deploy/triton/Dockerfile puts in the tree above it."""
    import importlib.util

    target = next(t for s, t, _ in _volumes(services["triton"]) if s == "./deploy/triton/model_repository")
    copied = re.search(r"^COPY embedding/nvfp4.py (\S+)", TRITON_DOCKERFILE.read_text(), re.M).group(1)
    root = tmp_path / "container"
    repo = root / target.lstrip("/")
    shutil.copytree(MODEL_REPO, repo, ignore=shutil.ignore_patterns("__pycache__"))
    nvfp4 = root / copied.lstrip("/")
    nvfp4.parent.mkdir(parents=True)
    shutil.copy2(REPO / "embedding" / "nvfp4.py", nvfp4)
    model_py = repo / "govrag_embedder" / "1" / "model.py"
    assert not (model_py.parent / "nvfp4.py").exists()
    spec = importlib.util.spec_from_file_location("compose_layout_model", model_py)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    loaded = module._load_nvfp4_module()
    assert Path(loaded.__file__).resolve() == nvfp4.resolve()


@pytest.mark.slow
def test_triton_service_layout_serves_on_cpu(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, services: dict[str, Any]
) -> None:
    """The compose Triton service's layout, started for real: the model repository as
    committed, `--model-config-name=gpu`, model_dir from GOVRAG_NVFP4_MODEL_DIR. Only the
    instance kind is switched to CPU (no GPU here); the GPU run itself needs a GPU machine."""
    from embedding.triton_server import start_triton, triton_env

    if not (triton_env() / "bin" / "python").exists():
        pytest.skip(f"no Triton env at {triton_env()} (scripts/setup_triton_env.sh)")
    pytest.importorskip("tritonclient.grpc")
    from embedding.quantize import Nvfp4Embedder, quantize_model
    from embedding.triton_client import TritonEmbedder

    model_dir = tmp_path / "minilm-nvfp4"
    quantize_model(model_dir, method="rtn")  # the format matters here, not the quality
    repo = tmp_path / "model_repository"
    shutil.copytree(MODEL_REPO, repo, ignore=shutil.ignore_patterns("__pycache__"))
    cfg = repo / "govrag_embedder" / "configs" / "gpu.pbtxt"
    cfg.write_text(cfg.read_text().replace("kind: KIND_GPU", "kind: KIND_CPU"))
    config_name = next(
        a.split("=", 1)[1] for a in services["triton"]["command"] if a.startswith("--model-config-name=")
    )
    monkeypatch.setenv("GOVRAG_NVFP4_MODEL_DIR", str(model_dir))
    # config.pbtxt gets another (wrong) model_dir: proof that the custom config is the one loaded
    server = start_triton(
        tmp_path / "not-this-one",
        model_repo=repo,
        extra_args=[f"--model-config-name={config_name}"],
        ready_timeout_s=240,
    )
    try:
        from urllib.request import urlopen

        with urlopen(f"http://{server.http_url}/v2/models/govrag_embedder/config", timeout=10) as resp:
            loaded = json.loads(resp.read())
        assert loaded["instance_group"][0]["count"] == 2
        assert int(loaded["dynamic_batching"]["max_queue_delay_microseconds"]) == 500
        texts = ["quarterly revenue grew", "rollback the deployment", "vacation policy"]
        got = TritonEmbedder(server.grpc_url, batch_size=2).embed(texts)
        import numpy as np

        np.testing.assert_allclose(got, Nvfp4Embedder(model_dir).embed(texts), atol=1e-4)
    finally:
        server.stop()


def test_the_policy_file_has_one_name_in_compose_and_in_govrag(services: dict[str, Any]) -> None:
    """The host's GOVRAG_POLICY names the file compose mounts (GOVRAG_POLICY_FILE, the earlier
    name, is the fallback), and inside the containers GOVRAG_POLICY is where it is mounted."""
    for name in GOVRAG_SERVICES:
        svc = services[name]
        (source,) = [src for src, target, _ in _volumes(svc) if target == _env(svc)["GOVRAG_POLICY"]]
        assert source == "${GOVRAG_POLICY:-${GOVRAG_POLICY_FILE:-./govrag/sample/policy.yaml}}", name
