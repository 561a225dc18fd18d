"""``examples/kubernetes/base``: schema-validated, not applied to a cluster (none runs here).

Every object of the base is validated strictly (``tests/k8s_checks.py``); the kustomization
lists every file; the commands and ``HPS_*`` variables are the CLI's and the settings'; the
Secret, Service and image are those ``hpsearch k8s render`` refers to; PgBouncer's
ConfigMap, Deployment and Service fit together, its ini is docs/pgbouncer.md's and a real
PgBouncer accepts it, and the example database URL goes through it. The checker itself is
shown to fail on broken objects, and the docs to name the version validated against.
"""

from __future__ import annotations

import configparser
import copy
import re
from pathlib import Path, PurePosixPath
from typing import Any

import jsonschema
import pytest
import yaml
from sqlalchemy.engine import make_url

from service.k8s import (
    API_KEY_KEY,
    DATABASE_URL_KEY,
    DEFAULT_AGENT_URL,
    DEFAULT_SECRET,
    KEDA_CONNECTION_KEY,
    OLDEST_KUBERNETES,
    PodRequest,
    StudyTasks,
    default_image,
    manifests,
)
from tests.deployment_checks import cli_errors, hps_env_errors
from tests.k8s_checks import container_of, pod_of, validate
from tests.pgbouncer import pgbouncer_with

ROOT = Path(__file__).resolve().parents[2]
BASE = ROOT / "examples" / "kubernetes" / "base"
PGBOUNCER = "hpsearch-pgbouncer"  # the ConfigMap, Secret, Deployment and Service


def _base() -> dict[str, list[dict[str, Any]]]:
    return {
        p.name: [o for o in yaml.safe_load_all(p.read_text()) if o] for p in BASE.glob("*.yaml")
    }


def _objects() -> dict[tuple[str, str], dict[str, Any]]:
    """Every object of the base by (kind, name), the kustomization as ("Kustomization", "")."""
    found: dict[tuple[str, str], dict[str, Any]] = {}
    for objects in _base().values():
        for obj in objects:
            key = (obj["kind"], obj.get("metadata", {}).get("name", ""))
            assert key not in found, key
            found[key] = obj
    return found


def _ini(text: str) -> configparser.ConfigParser:
    parser = configparser.ConfigParser(interpolation=None)
    parser.read_string(text)
    return parser


def test_every_base_object_validates_strictly() -> None:
    found = _base()
    kinds = set()
    for name, objects in found.items():
        if name == "kustomization.yaml":
            continue
        for obj in objects:
            validate(obj)
            kinds.add(obj["kind"])
    assert kinds == {"Secret", "Job", "Deployment", "Service", "ConfigMap"}


def test_kustomization_lists_every_file() -> None:
    (kustomization,) = _base().pop("kustomization.yaml")
    listed = kustomization["resources"]
    assert sorted(listed) == sorted(
        p.name for p in BASE.glob("*.yaml") if p.name != "kustomization.yaml"
    )
    assert len(set(listed)) == len(listed)


def test_the_docs_list_every_file() -> None:
    page = (ROOT / "docs" / "kubernetes.md").read_text()
    for path in BASE.glob("*.yaml"):
        assert f"[`{path.name}`](../examples/kubernetes/base/{path.name})" in page, path.name


def test_base_agrees_with_the_cli_and_the_renders() -> None:
    objects = _objects()
    errors = []
    for kind, name in (("Job", "hpsearch-migrate"), ("Deployment", "hpsearch-api")):
        container = container_of(objects[kind, name])
        assert container["image"] == default_image(), kind  # the release the renders name
        assert container["command"][0] == "hpsearch"
        errors += cli_errors(container["command"][1:], f"base {kind}")
        errors += hps_env_errors(
            {e["name"]: e.get("value") for e in container.get("env", [])}, f"base {kind}"
        )
        refs = [e["valueFrom"]["secretKeyRef"] for e in container["env"] if "valueFrom" in e]
        assert {"name": DEFAULT_SECRET, "key": DATABASE_URL_KEY} in refs, kind
    assert not errors, "\n".join(errors)
    (image,) = objects["Kustomization", ""]["images"]
    assert f"{image['name']}:{image['newTag']}" == default_image()
    secret = objects["Secret", DEFAULT_SECRET]
    assert set(secret["stringData"]) == {DATABASE_URL_KEY, API_KEY_KEY, KEDA_CONNECTION_KEY}
    service, deployment = objects["Service", "hpsearch-api"], objects["Deployment", "hpsearch-api"]
    pod_labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert service["spec"]["selector"].items() <= pod_labels.items()
    assert deployment["spec"]["selector"]["matchLabels"].items() <= pod_labels.items()
    (port,) = service["spec"]["ports"]
    assert f"http://{service['metadata']['name']}:{port['port']}" == DEFAULT_AGENT_URL
    ports = {p["name"] for p in container_of(deployment)["ports"]}
    assert port["targetPort"] in ports


def test_pgbouncer_stands_between_hpsearch_and_postgresql() -> None:
    """PgBouncer's ConfigMap, Deployment, Service and userlist Secret fit together; its ini
    is docs/pgbouncer.md's (transaction pooling); the example HPS_DATABASE_URL goes through
    it with prepare_threshold=none, and KEDA's connection goes to PostgreSQL directly."""
    objects = _objects()
    config, deployment = objects["ConfigMap", PGBOUNCER], objects["Deployment", PGBOUNCER]
    service, userlist = objects["Service", PGBOUNCER], objects["Secret", PGBOUNCER]
    ini = _ini(config["data"]["pgbouncer.ini"])
    settings = ini["pgbouncer"]
    assert settings["pool_mode"] == "transaction"
    assert (settings["default_pool_size"], settings["max_client_conn"]) == ("20", "500")
    assert settings["auth_type"] == "scram-sha-256"

    # The same ini as the docs', but for the database's host (the PostgreSQL Service here).
    page = (ROOT / "docs" / "pgbouncer.md").read_text()
    (documented,) = re.findall(r"```ini\n(.*?)```", page, re.S)
    docs = _ini(documented)
    assert dict(docs["pgbouncer"]) == dict(settings)
    assert list(docs["databases"]) == list(ini["databases"])
    server = dict(part.split("=") for part in ini["databases"]["hps"].split())
    documented_server = dict(part.split("=") for part in docs["databases"]["hps"].split())
    assert {**documented_server, "host": server["host"]} == server

    # The Deployment runs pgbouncer on that file, with userlist.txt where auth_file says.
    pod = deployment["spec"]["template"]
    container = container_of(deployment)
    (mount,) = container["volumeMounts"]
    (volume,) = [v for v in pod["spec"]["volumes"] if v["name"] == mount["name"]]
    mounted = {}
    for source in volume["projected"]["sources"]:
        ((kind, ref),) = source.items()
        for item in ref["items"]:
            path = str(PurePosixPath(mount["mountPath"]) / item["path"])
            mounted[path] = (kind, ref["name"], item["key"])
    assert container["command"][0].endswith("/pgbouncer")
    assert mounted[container["command"][1]] == ("configMap", PGBOUNCER, "pgbouncer.ini")
    assert mounted[settings["auth_file"]] == ("secret", PGBOUNCER, "userlist.txt")
    assert set(userlist["stringData"]) == {"userlist.txt"}
    (port,) = container["ports"]
    assert port["containerPort"] == int(settings["listen_port"]) == 6432
    for probe in ("readinessProbe", "livenessProbe"):
        assert container[probe]["tcpSocket"]["port"] == port["name"], probe
    assert container["resources"]["requests"] and container["resources"]["limits"]
    security = pod["spec"]["securityContext"]
    assert security["runAsNonRoot"] and security["runAsUser"] > 0
    assert container["securityContext"]["allowPrivilegeEscalation"] is False
    assert container["securityContext"]["capabilities"]["drop"] == ["ALL"]

    # The Service reaches those pods on 6432.
    pod_labels = pod["metadata"]["labels"]
    assert service["spec"]["selector"].items() <= pod_labels.items()
    assert deployment["spec"]["selector"]["matchLabels"].items() <= pod_labels.items()
    (service_port,) = service["spec"]["ports"]
    assert (service_port["port"], service_port["targetPort"]) == (6432, port["name"])

    # hpsearch's URL (the API, the migration, every worker) goes through PgBouncer, with
    # psycopg's server-side prepared statements off; KEDA's to PostgreSQL itself.
    secret = objects["Secret", DEFAULT_SECRET]["stringData"]
    url = make_url(secret[DATABASE_URL_KEY])
    assert url.drivername == "postgresql+psycopg"
    assert (url.host, url.port) == (PGBOUNCER, 6432)
    assert url.database in ini["databases"]
    assert dict(url.query) == {"prepare_threshold": "none"}
    assert f'"{url.username}" ' in userlist["stringData"]["userlist.txt"]
    keda = make_url(secret[KEDA_CONNECTION_KEY])
    assert (keda.host, keda.port, keda.database) == (
        server["host"],
        int(server["port"]),
        server["dbname"],
    )


def test_a_real_pgbouncer_accepts_the_base_ini() -> None:
    """Debian's PgBouncer (``make pgbouncer``: missing, this fails) starts on the ConfigMap's
    ini and the example userlist, listening elsewhere: it refuses to start on an unknown
    setting or a bad value. PostgreSQL is not reached: nothing connects through it."""
    objects = _objects()
    ini = objects["ConfigMap", PGBOUNCER]["data"]["pgbouncer.ini"]
    userlist = objects["Secret", PGBOUNCER]["stringData"]["userlist.txt"]
    with pgbouncer_with(ini, userlist) as bouncer:
        assert bouncer.proc.poll() is None
        assert "pool_mode = transaction" in (bouncer.root / "pgbouncer.ini").read_text()
    broken = ini.replace("pool_mode = transaction", "pool_mode = transactoin")
    with pytest.raises(RuntimeError, match="pool_mode"), pgbouncer_with(broken, userlist):
        pass


def test_the_validation_can_fail() -> None:
    """Strict really is strict: an unknown field or a wrong type anywhere is an error."""
    tasks, request = StudyTasks(study_id=4), PodRequest(workers=2)
    job, (auth, scaled) = manifests(tasks, request)[0], manifests(tasks, request, keda=True)
    broken = [copy.deepcopy(o) for o in (job, job, auth, scaled, scaled, scaled)]
    broken[0]["spec"]["completion"] = 1
    pod_of(broken[1])["spec"]["containers"][0]["resources"]["limits"] = {"cpu": ["1"]}
    broken[2]["spec"]["secretTargetRef"][0]["secret"] = "x"
    broken[3]["spec"]["triggers"][0]["metadata"] = "SELECT 1"
    broken[4]["spec"]["maxReplicas"] = 3
    pod_of(broken[5])["spec"]["terminationGracePeriod"] = 120
    for obj in broken:
        with pytest.raises(jsonschema.ValidationError):
            validate(obj)


def test_the_docs_name_the_version_tested_and_say_what_is_not() -> None:
    page = (ROOT / "docs" / "kubernetes.md").read_text()
    assert f"**Kubernetes {OLDEST_KUBERNETES}**" in page
    assert "Schema-validated, not applied to a cluster by the test suite." in page
    assert f"against Kubernetes {OLDEST_KUBERNETES}" in (BASE / "kustomization.yaml").read_text()
