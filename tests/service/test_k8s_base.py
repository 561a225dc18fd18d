"""``examples/kubernetes/base``: schema-validated, not applied to a cluster (none runs here).

Every object of the base is validated strictly (``tests/k8s_checks.py``); the kustomization
lists every file; the commands and ``HPS_*`` variables are the CLI's and the settings'; the
Secret, Service and image are those ``hpsearch k8s render`` refers to. The checker itself is
shown to fail on broken objects, and the docs to name the version validated against.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

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

ROOT = Path(__file__).resolve().parents[2]
BASE = ROOT / "examples" / "kubernetes" / "base"


def _base() -> dict[str, list[dict[str, Any]]]:
    return {
        p.name: [o for o in yaml.safe_load_all(p.read_text()) if o] for p in BASE.glob("*.yaml")
    }


def test_every_base_object_validates_strictly() -> None:
    found = _base()
    kinds = set()
    for name, objects in found.items():
        if name == "kustomization.yaml":
            continue
        for obj in objects:
            validate(obj)
            kinds.add(obj["kind"])
    assert kinds == {"Secret", "Job", "Deployment", "Service"}


def test_kustomization_lists_every_file() -> None:
    (kustomization,) = _base().pop("kustomization.yaml")
    listed = kustomization["resources"]
    assert sorted(listed) == sorted(
        p.name for p in BASE.glob("*.yaml") if p.name != "kustomization.yaml"
    )
    assert len(set(listed)) == len(listed)


def test_base_agrees_with_the_cli_and_the_renders() -> None:
    objects = {o["kind"]: o for objs in _base().values() for o in objs}
    errors = []
    for kind in ("Job", "Deployment"):
        container = container_of(objects[kind])
        assert container["image"] == default_image(), kind  # the release the renders name
        assert container["command"][0] == "hpsearch"
        errors += cli_errors(container["command"][1:], f"base {kind}")
        errors += hps_env_errors(
            {e["name"]: e.get("value") for e in container.get("env", [])}, f"base {kind}"
        )
    assert not errors, "\n".join(errors)
    (image,) = objects["Kustomization"]["images"]
    assert f"{image['name']}:{image['newTag']}" == default_image()
    secret = objects["Secret"]
    assert secret["metadata"]["name"] == DEFAULT_SECRET
    assert set(secret["stringData"]) == {DATABASE_URL_KEY, API_KEY_KEY, KEDA_CONNECTION_KEY}
    service, deployment = objects["Service"], objects["Deployment"]
    pod_labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert service["spec"]["selector"].items() <= pod_labels.items()
    assert deployment["spec"]["selector"]["matchLabels"].items() <= pod_labels.items()
    (port,) = service["spec"]["ports"]
    assert f"http://{service['metadata']['name']}:{port['port']}" == DEFAULT_AGENT_URL
    ports = {p["name"] for p in container_of(deployment)["ports"]}
    assert port["targetPort"] in ports


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
