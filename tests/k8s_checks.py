"""Validating Kubernetes objects as ``tests/service/test_k8s*.py`` do, with no cluster.

Core objects: ``kubernetes-validate`` in strict mode (unknown fields rejected) for the oldest
Kubernetes supported (``service.k8s.OLDEST_KUBERNETES``) and the newest it bundles. KEDA's
objects are custom resources it does not know: they are validated against KEDA's own CRD
schemas (``tests/service/keda_schemas.yaml``, copied from KEDA's repository), made strict
the same way, and a ScaledJob's ``jobTargetRef`` as a Job's spec. Names and label values
must be valid DNS-1123 names and label values.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import yaml

from service.k8s import OLDEST_KUBERNETES

KEDA_SCHEMAS = Path(__file__).resolve().parent / "service" / "keda_schemas.yaml"
VERSIONS = (OLDEST_KUBERNETES, kubernetes_validate.latest_version())
DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")
LABEL_VALUE = re.compile(r"^([A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?)?$")


def _strict(schema: Any) -> Any:
    """A CRD schema that rejects unknown fields (as ``kubectl apply --validate=strict``
    does): every object with ``properties`` and no other rule for extra keys is closed."""
    if isinstance(schema, list):
        return [_strict(item) for item in schema]
    if not isinstance(schema, dict):
        return schema
    closed = {key: _strict(value) for key, value in schema.items()}
    if (
        "properties" in schema
        and "additionalProperties" not in schema
        and not schema.get("x-kubernetes-preserve-unknown-fields")
    ):
        closed["additionalProperties"] = False
    return closed


KEDA = {kind: _strict(s) for kind, s in yaml.safe_load(KEDA_SCHEMAS.read_text()).items()}


def validate(obj: dict[str, Any]) -> None:
    """Strict validation of one object (raises ``jsonschema.ValidationError``), and its
    names (``AssertionError``)."""
    check_names(obj)
    if obj["apiVersion"].startswith("keda.sh/"):
        jsonschema.validate(obj, KEDA[obj["kind"]])
        if obj["kind"] == "ScaledJob":
            job = {"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": "x"}}
            validate({**job, "spec": obj["spec"]["jobTargetRef"]})
        return
    for version in VERSIONS:
        kubernetes_validate.validate(obj, version, strict=True)


def check_names(obj: dict[str, Any]) -> None:
    meta = obj["metadata"]
    assert DNS_LABEL.match(meta["name"]), meta["name"]
    for labels in (meta.get("labels", {}), pod_of(obj).get("metadata", {}).get("labels", {})):
        for key, value in labels.items():
            assert LABEL_VALUE.match(value), (key, value)


def pod_of(obj: dict[str, Any]) -> dict[str, Any]:
    spec = obj.get("spec", {})
    return spec.get("template") or spec.get("jobTargetRef", {}).get("template") or {}


def container_of(obj: dict[str, Any]) -> dict[str, Any]:
    (container,) = pod_of(obj)["spec"]["containers"]
    return dict(container)


def env_of(container: dict[str, Any]) -> dict[str, Any]:
    return {e["name"]: e.get("value", e.get("valueFrom")) for e in container.get("env", [])}


def k8s_expand(arg: str, env: dict[str, str]) -> str:
    """What Kubernetes makes of ``$(VAR)`` in a command (its ``expansion.Expand``): a
    defined variable's value, ``$$`` one ``$``, anything else as written."""
    out, i = [], 0
    while i < len(arg):
        if arg[i] == "$" and i + 1 < len(arg):
            if arg[i + 1] == "$":
                out.append("$")
                i += 2
                continue
            end = arg.find(")", i + 2) if arg[i + 1] == "(" else -1
            if end != -1:
                name = arg[i + 2 : end]
                out.append(env.get(name, f"$({name})"))
                i = end + 1
                continue
        out.append(arg[i])
        i += 1
    return "".join(out)


__all__ = ["VERSIONS", "container_of", "env_of", "k8s_expand", "pod_of", "validate"]
