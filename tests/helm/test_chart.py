#!/usr/bin/env python3
"""Checks the Helm chart in helm/permd with a real Helm library.

Lints the chart, renders it with every values file in tests/helm/values/
(helm-python-sdk: Helm v4's own Go code behind a C ABI, no helm binary),
validates every rendered object against the Kubernetes OpenAPI schemas
(kubernetes-validate, strict: unknown fields are errors) and asserts on what
matters: the permd sidecar, its securityContext, gRPC probes, env, scrape
annotations, volumes. Values files named bad-*.yaml must be rejected, by the
schema or the chart's own checks, with a message naming the offending key.

It also includes the sidecar from a throwaway application chart that depends
on this one, the way README.md in the chart says to.

With PERMD_BIN set to a permd binary (tests/helm_chart.rs sets it), it also
checks the chart against the real server: every PERMD_* variable `permd serve`
reads is set by the chart with the same defaults (and nothing else is), the
rendered data files pass `permd validate`, `permd serve --print-config` with
each rendered environment shows the values' settings, and `permd serve`
starts with the rendered environment.

    pip install -r tests/helm/requirements.txt
    python3 tests/helm/test_chart.py            # add -v for each test's name
"""

from __future__ import annotations

import json
import os
import queue
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import unittest
from pathlib import Path
from typing import Any

import helm_python as helm
import kubernetes_validate
import yaml

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
CHART = REPO / "helm" / "permd"
VALUES_DIR = HERE / "values"
RELEASE = "shop"
NAMESPACE = "commerce"

# Kubernetes versions each render is validated against: the chart's
# kubeVersion floor and the newest schema kubernetes-validate ships.
FLOOR = "1.27"
NEWEST = kubernetes_validate.latest_version()
# Values files that need a newer Kubernetes than the floor, and why.
MIN_VERSION = {
    "native-sidecar.yaml": "1.29",  # initContainers[].restartPolicy: Always
    "grpc-tls-probes.yaml": "1.37",  # grpc.mode: TLS
}

# PERMD_* variables `permd serve` reads that the chart leaves unset, and why.
NOT_SET_BY_CHART = {
    "PERMD_CONFIG": "the chart sets every setting as env, which wins over a config file",
}
# The chart's value (a dotted values key) for each `permd serve` setting with
# a default that every rendering sets.
CHART_DEFAULTS = {
    "PERMD_LISTEN": None,  # computed: see listen-address assertions
    "PERMD_MAX_BATCH": "maxBatch",
    "PERMD_MAX_MESSAGE_BYTES": "maxMessageBytes",
    "PERMD_MAX_CONCURRENT_REQUESTS": "maxConcurrentRequests",
    "PERMD_MAX_CONCURRENT_STREAMS": "maxConcurrentStreams",
    "PERMD_MAX_NAME_BYTES": "maxNameBytes",
    "PERMD_MAX_CONTEXT_FIELDS": "maxContextFields",
    "PERMD_MAX_REVISION_WAITERS": "maxRevisionWaiters",
    "PERMD_MAX_MIN_REVISION_WAIT": "maxMinRevisionWait",
    "PERMD_MAX_REVISION_LEAD": "maxRevisionLead",
    "PERMD_MAX_CACHE_BYTES": "maxCacheBytes",
    "PERMD_MAX_CONNECTIONS": "maxConnections",
    "PERMD_MAX_STREAMS_PER_CONNECTION": "maxStreamsPerConnection",
    "PERMD_MAX_HEADER_LIST_BYTES": "maxHeaderListBytes",
    "PERMD_MAX_BUFFERED_REQUEST_BYTES": "maxBufferedRequestBytes",
    "PERMD_MAX_BUFFERED_REQUEST_BYTES_PER_CONNECTION": "maxBufferedRequestBytesPerConnection",
    "PERMD_REQUEST_BODY_TIMEOUT": "requestBodyTimeout",
    "PERMD_HANDSHAKE_TIMEOUT": "handshakeTimeout",
    "PERMD_IDLE_TIMEOUT": "idleTimeout",
    "PERMD_MAX_DATA_FILE_BYTES": "maxDataFileBytes",
}
# The settings of PostgreSQL mode: set exactly when secrets.existingSecret is
# (without a database they mean nothing), with their values keys.
DATABASE_ENV = {
    "PERMD_DATABASE_URL": None,  # the Secret's database-url
    "PERMD_ADMIN_TOKEN": None,  # the Secret's admin-token (optional key)
    "PERMD_MAX_STALENESS": "database.maxStaleness",
    "PERMD_CHANGELOG_RETENTION": "database.changelogRetention",
}

SECURITY_CONTEXT = {
    "runAsNonRoot": True,
    "runAsUser": 65532,
    "runAsGroup": 65532,
    "readOnlyRootFilesystem": True,
    "allowPrivilegeEscalation": False,
    "privileged": False,
    "capabilities": {"drop": ["ALL"]},
    "seccompProfile": {"type": "RuntimeDefault"},
}


class UniqueKeyLoader(yaml.SafeLoader):
    """A YAML loader that refuses duplicate keys, as the API server's does."""


def _construct_mapping(loader: UniqueKeyLoader, node: yaml.MappingNode, deep: bool = False):
    seen = set()
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=deep)
        if key in seen:
            raise yaml.constructor.ConstructorError(
                None, None, f"duplicate key {key!r}", key_node.start_mark
            )
        seen.add(key)
    return yaml.SafeLoader.construct_mapping(loader, node, deep=deep)


UniqueKeyLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


def lookup(values: dict[str, Any], dotted: str) -> Any:
    """values["a"]["b"] for "a.b"."""
    for key in dotted.split("."):
        values = values[key]
    return values


def span(text: Any) -> str:
    """A duration as `permd serve --print-config` prints it: the largest
    whole unit ("60s" is "1m"), "0" for none."""
    m = re.fullmatch(r"(0|([0-9]+)(ms|s|m|h|d))", str(text))
    assert m, f"not a permd duration: {text!r}"
    if m.group(1) == "0":
        return "0"
    ms = int(m.group(2)) * {"ms": 1, "s": 1000, "m": 60_000, "h": 3_600_000, "d": 86_400_000}[m.group(3)]
    if ms == 0:
        return "0"
    for unit, size in (("d", 86_400_000), ("h", 3_600_000), ("m", 60_000), ("s", 1000)):
        if ms % size == 0:
            return f"{ms // size}{unit}"
    return f"{ms}ms"


def load_values(name: str) -> dict[str, Any]:
    with open(VALUES_DIR / name, encoding="utf-8") as f:
        return yaml.safe_load(f) or {}


def good_values_files() -> list[str]:
    return sorted(p.name for p in VALUES_DIR.glob("*.yaml") if not p.name.startswith("bad-"))


def render(values: dict[str, Any], chart: Path = CHART) -> dict[str, str]:
    """Template path → rendered text, empty templates dropped."""
    with helm.Chart.load(chart) as c:
        out = c.render(values, name=RELEASE, namespace=NAMESPACE)
    return {path: text for path, text in out.items() if text.strip()}


def objects(rendered: dict[str, str]) -> list[dict[str, Any]]:
    """Every Kubernetes object rendered (NOTES.txt is not one)."""
    docs = []
    for path, text in sorted(rendered.items()):
        if path.endswith("NOTES.txt"):
            continue
        for doc in yaml.load_all(text, Loader=UniqueKeyLoader):
            if doc:
                doc.setdefault("_template", path)
                docs.append(doc)
    return docs


def strip(doc: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in doc.items() if k != "_template"}


def by_kind(docs: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [d for d in docs if d["kind"] == kind]


def pod_spec(deployment: dict[str, Any]) -> dict[str, Any]:
    return deployment["spec"]["template"]["spec"]


def permd_container(spec: dict[str, Any]) -> dict[str, Any]:
    found = [
        c
        for c in spec.get("containers", []) + spec.get("initContainers", [])
        if c["name"] == "permd"
    ]
    assert len(found) == 1, f"exactly one permd container, got {len(found)}"
    return found[0]


def env_of(container: dict[str, Any]) -> dict[str, Any]:
    """name → value (a string), or the valueFrom object."""
    out = {}
    for e in container.get("env", []):
        assert e["name"] not in out, f"env {e['name']} set twice"
        out[e["name"]] = e.get("value", e.get("valueFrom"))
    return out


def validate_all(test: unittest.TestCase, docs: list[dict[str, Any]], versions: list[str]) -> None:
    for doc in docs:
        for version in versions:
            with test.subTest(obj=f"{doc['kind']}/{doc['metadata']['name']}", kube=version):
                try:
                    kubernetes_validate.validate(strip(doc), version, strict=True)
                except kubernetes_validate.ValidationError as e:
                    path = ".".join(str(p) for p in e.path)
                    test.fail(f"{doc['_template']}: {doc['kind']} invalid for Kubernetes {version} at {path}: {e.message}")


def versions_for(values_file: str) -> list[str]:
    floor = MIN_VERSION.get(values_file, FLOOR)
    return sorted({floor, NEWEST}, key=lambda v: tuple(int(x) for x in v.split(".")))


class Lint(unittest.TestCase):
    def test_chart_lints_clean(self):
        report = helm.lint(CHART, strict=True)
        self.assertEqual(report["errors"], [], report)
        serious = [m for m in report["messages"] if m["severity"] >= 2]
        self.assertEqual(serious, [], report)

    def test_chart_lints_with_every_good_values_file(self):
        for name in good_values_files():
            with self.subTest(values=name):
                report = helm.lint(CHART, load_values(name), strict=True)
                self.assertEqual(report["errors"], [], report)

    def test_schema_is_draft7_and_closed(self):
        schema = json.loads((CHART / "values.schema.json").read_text())
        self.assertEqual(schema["$schema"], "http://json-schema.org/draft-07/schema#")

        # Every object level of the schema that defines properties is closed.
        def walk(node: Any, where: str) -> None:
            if isinstance(node, dict):
                if "properties" in node and where != "/properties/extraEnv/items":
                    self.assertIs(node.get("additionalProperties"), False, f"{where} is open")
                for k, v in node.items():
                    walk(v, f"{where}/{k}")
            elif isinstance(node, list):
                for i, v in enumerate(node):
                    walk(v, f"{where}/{i}")

        walk(schema, "")

        # values.yaml documents every key the schema knows, and vice versa.
        defaults = yaml.safe_load((CHART / "values.yaml").read_text())
        self.assertEqual(set(defaults), set(schema["properties"]))


class Render(unittest.TestCase):
    """Every good values file renders to valid objects; then one test per file."""

    def render_file(self, name: str) -> tuple[dict[str, Any], list[dict[str, Any]], dict[str, str]]:
        values = load_values(name)
        rendered = render(values)
        docs = objects(rendered)
        validate_all(self, docs, versions_for(name))
        return values, docs, rendered

    def test_every_good_values_file_renders_valid_objects(self):
        for name in good_values_files():
            with self.subTest(values=name):
                _, docs, _ = self.render_file(name)
                for d in docs:
                    self.assertEqual(d["metadata"].get("namespace"), NAMESPACE, d["_template"])

    def check_sidecar(self, deployment: dict[str, Any]) -> dict[str, Any]:
        """What holds in every rendering: returns the permd container."""
        spec = pod_spec(deployment)
        c = permd_container(spec)
        self.assertEqual(c["securityContext"], SECURITY_CONTEXT)
        self.assertEqual(c["args"], ["serve"], "no --listen flag shadowing PERMD_LISTEN")
        self.assertIn("requests", c["resources"])
        self.assertIn("limits", c["resources"])
        env = env_of(c)
        for name in CHART_DEFAULTS:
            self.assertIn(name, env)
        self.assertIn("RUST_LOG", env)
        self.assertIn(env["PERMD_LOG_FORMAT"], ("json", "pretty"))
        self.assertNotIn("PERMD_CONFIG", env)
        # The database settings come together, and never with a data file
        # (`permd serve` refuses --data with --database-url).
        database = "PERMD_DATABASE_URL" in env
        for name in DATABASE_ENV:
            self.assertEqual(name in env, database, name)
        if database:
            self.assertNotIn("PERMD_DATA", env)
        return c

    def test_default(self):
        values, docs, rendered = self.render_file("default.yaml")
        self.assertEqual(
            sorted((d["kind"], d["metadata"]["name"]) for d in docs),
            [("Deployment", "shop-permd-example"), ("NetworkPolicy", "shop-permd-example")],
        )
        dep = by_kind(docs, "Deployment")[0]
        spec = pod_spec(dep)
        self.assertEqual([c["name"] for c in spec["containers"]], ["app", "permd"])
        self.assertNotIn("initContainers", spec)
        self.assertNotIn("volumes", spec, "demo data and no TLS need no volume")
        self.assertIs(spec["securityContext"]["runAsNonRoot"], True)

        c = self.check_sidecar(dep)
        self.assertEqual(c["image"], "permd:0.1.0")
        env = env_of(c)
        # Probes need the pod IP, so 0.0.0.0 even though not exposed.
        self.assertEqual(env["PERMD_LISTEN"], "0.0.0.0:50051")
        self.assertEqual(env["PERMD_MAX_BATCH"], "100000")
        self.assertEqual(env["PERMD_MAX_MESSAGE_BYTES"], "16777216")
        self.assertEqual(env["PERMD_MAX_CONCURRENT_REQUESTS"], "256")
        self.assertEqual(env["PERMD_MAX_CONCURRENT_STREAMS"], "32")
        self.assertEqual(env["PERMD_METRICS_LISTEN"], "0.0.0.0:9090")
        self.assertEqual(env["RUST_LOG"], "info")
        self.assertEqual(env["PERMD_LOG_FORMAT"], "json")
        for absent in ("PERMD_NO_METRICS", "PERMD_DATA", "PERMD_TLS_CERT", "PERMD_TLS_KEY", "PERMD_TLS_CLIENT_CA",
                       *DATABASE_ENV):
            self.assertNotIn(absent, env)
        self.assertNotIn("volumeMounts", c)

        # Native gRPC probes on the gRPC port: startup, readiness, liveness.
        self.assertEqual(c["startupProbe"]["grpc"], {"port": 50051})
        self.assertEqual(c["readinessProbe"]["grpc"], {"port": 50051, "service": "permd.v1.Authorizer"})
        self.assertEqual(c["livenessProbe"]["grpc"], {"port": 50051})
        self.assertGreaterEqual(
            c["startupProbe"]["periodSeconds"] * c["startupProbe"]["failureThreshold"], 60,
            "a minute or more to load data",
        )
        ports = {p["name"]: p["containerPort"] for p in c["ports"]}
        self.assertEqual(ports, {"permd-grpc": 50051, "metrics": 9090})

        annotations = dep["spec"]["template"]["metadata"]["annotations"]
        self.assertEqual(annotations["prometheus.io/scrape"], "true")
        self.assertEqual(annotations["prometheus.io/port"], "9090")
        self.assertEqual(annotations["prometheus.io/path"], "/metrics")
        self.assertIn("checksum/permd-data", annotations)

        app = spec["containers"][0]
        self.assertEqual(env_of(app)["PERMD_ADDR"], "http://127.0.0.1:50051")

        # The NetworkPolicy keeps 50051 pod-private: app port and metrics only.
        np = by_kind(docs, "NetworkPolicy")[0]
        self.assertEqual(np["spec"]["podSelector"]["matchLabels"],
                         dep["spec"]["selector"]["matchLabels"])
        self.assertEqual(dep["spec"]["selector"]["matchLabels"],
                         {k: v for k, v in dep["spec"]["template"]["metadata"]["labels"].items()
                          if k in dep["spec"]["selector"]["matchLabels"]})
        admitted = sorted(p["port"] for rule in np["spec"]["ingress"] for p in rule["ports"])
        self.assertEqual(admitted, [8080, 9090])
        self.assertIn("built-in demo tenant", rendered["permd/templates/NOTES.txt"])

    def test_inline_data(self):
        values, docs, _ = self.render_file("inline-data.yaml")
        cm = by_kind(docs, "ConfigMap")
        self.assertEqual(len(cm), 1)
        cm = cm[0]
        self.assertEqual(cm["metadata"]["name"], "shop-permd-data")
        self.assertEqual(cm["data"]["data.yaml"], values["data"]["inline"], "byte for byte")

        dep = by_kind(docs, "Deployment")[0]
        c = self.check_sidecar(dep)
        env = env_of(c)
        self.assertEqual(env["PERMD_DATA"], "/etc/permd/data/data.yaml")
        self.assertEqual(env["PERMD_MAX_BATCH"], "5000")
        self.assertEqual(env["PERMD_MAX_MESSAGE_BYTES"], "4194304")
        self.assertEqual(env["PERMD_MAX_CONCURRENT_REQUESTS"], "64")
        self.assertEqual(env["PERMD_MAX_CONCURRENT_STREAMS"], "4")
        self.assertEqual(env["RUST_LOG"], "permd=debug,info")
        self.assertEqual(c["volumeMounts"],
                         [{"name": "permd-data", "mountPath": "/etc/permd/data", "readOnly": True}])
        self.assertEqual(pod_spec(dep)["volumes"], [{
            "name": "permd-data",
            "configMap": {"name": "shop-permd-data",
                          "items": [{"key": "data.yaml", "path": "data.yaml"}]},
        }])
        # A different data file is a different pod template: pods roll.
        default_dep = by_kind(objects(render({})), "Deployment")[0]
        self.assertNotEqual(
            dep["spec"]["template"]["metadata"]["annotations"]["checksum/permd-data"],
            default_dep["spec"]["template"]["metadata"]["annotations"]["checksum/permd-data"],
        )

    def test_existing_secret_and_mutual_tls(self):
        _, docs, _ = self.render_file("existing-secret-tls.yaml")
        dep = by_kind(docs, "Deployment")[0]
        spec = pod_spec(dep)
        c = self.check_sidecar(dep)
        self.assertEqual(
            c["image"],
            "registry.example.com/platform/permd@sha256:"
            "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
        )
        self.assertEqual(c["imagePullPolicy"], "Always")
        self.assertEqual(spec["imagePullSecrets"], [{"name": "my-registry"}])
        env = env_of(c)
        self.assertEqual(env["PERMD_DATABASE_URL"],
                         {"secretKeyRef": {"name": "permd-secrets", "key": "database-url"}})
        self.assertEqual(env["PERMD_ADMIN_TOKEN"],
                         {"secretKeyRef": {"name": "permd-secrets", "key": "admin-token",
                                           "optional": True}})
        # The chart's (and permd's) defaults.
        self.assertEqual(env["PERMD_MAX_STALENESS"], "30s")
        self.assertEqual(env["PERMD_CHANGELOG_RETENTION"], "7d")
        self.assertNotIn("PERMD_DATA", env)
        self.assertEqual(env["PERMD_TLS_CERT"], "/etc/permd/tls/tls.crt")
        self.assertEqual(env["PERMD_TLS_KEY"], "/etc/permd/tls/tls.key")
        self.assertEqual(env["PERMD_TLS_CLIENT_CA"], "/etc/permd/tls/ca.crt")
        self.assertEqual(c["volumeMounts"],
                         [{"name": "permd-tls", "mountPath": "/etc/permd/tls", "readOnly": True}])
        (vol,) = spec["volumes"]
        self.assertEqual(vol["secret"]["secretName"], "permd-tls")
        self.assertEqual([i["key"] for i in vol["secret"]["items"]], ["tls.crt", "tls.key", "ca.crt"])
        self.assertEqual(vol["secret"]["defaultMode"], 0o444)
        # The kubelet's gRPC probe cannot speak TLS: TCP probes on the same port.
        for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
            self.assertEqual(c[probe]["tcpSocket"], {"port": 50051}, probe)
            self.assertNotIn("grpc", c[probe])
        self.assertEqual(env_of(spec["containers"][0])["PERMD_ADDR"], "https://localhost:50051")

    def test_database(self):
        values, docs, rendered = self.render_file("database.yaml")
        self.assertEqual(by_kind(docs, "ConfigMap"), [], "no data file to store")
        dep = by_kind(docs, "Deployment")[0]
        c = self.check_sidecar(dep)
        env = env_of(c)
        self.assertEqual(env["PERMD_DATABASE_URL"],
                         {"secretKeyRef": {"name": "permd-db", "key": "database-url"}})
        self.assertEqual(env["PERMD_ADMIN_TOKEN"],
                         {"secretKeyRef": {"name": "permd-db", "key": "admin-token", "optional": True}})
        self.assertEqual(env["PERMD_MAX_STALENESS"], "2m")
        self.assertEqual(env["PERMD_CHANGELOG_RETENTION"], "0")
        self.assertNotIn("PERMD_DATA", env)
        self.assertNotIn("volumeMounts", c)
        self.assertNotIn("volumes", pod_spec(dep))
        self.assertIn("Secret permd-db (key database-url", rendered["permd/templates/NOTES.txt"])

    def test_database_settings_need_a_database(self):
        # Without secrets.existingSecret the database settings are not passed.
        values = {"database": {"maxStaleness": "1m", "changelogRetention": "1d"}}
        c = self.check_sidecar(by_kind(objects(render(values)), "Deployment")[0])
        for name in DATABASE_ENV:
            self.assertNotIn(name, env_of(c))

    def test_zero_duration_as_a_number(self):
        # `--set database.changelogRetention=0` gives the number 0: accepted, passed as "0".
        values = {"secrets": {"existingSecret": "permd-db"},
                  "database": {"maxStaleness": 0, "changelogRetention": 0}}
        env = env_of(permd_container(pod_spec(by_kind(objects(render(values)), "Deployment")[0])))
        self.assertEqual(env["PERMD_MAX_STALENESS"], "0")
        self.assertEqual(env["PERMD_CHANGELOG_RETENTION"], "0")

    def test_expose_beyond_pod(self):
        _, docs, _ = self.render_file("expose-beyond-pod.yaml")
        dep = by_kind(docs, "Deployment")[0]
        c = self.check_sidecar(dep)
        self.assertEqual(env_of(c)["PERMD_LISTEN"], "0.0.0.0:50051")
        (svc,) = by_kind(docs, "Service")
        self.assertEqual(svc["metadata"]["name"], "shop-permd")
        self.assertEqual(svc["spec"]["ports"],
                         [{"name": "grpc", "port": 50051, "targetPort": "permd-grpc", "protocol": "TCP"}])
        self.assertEqual(svc["spec"]["selector"], dep["spec"]["selector"]["matchLabels"])
        (np,) = by_kind(docs, "NetworkPolicy")
        rules = {r["ports"][0]["port"]: r.get("from") for r in np["spec"]["ingress"]}
        self.assertEqual(set(rules), {8080, 9090, 50051})
        self.assertIsNone(rules[8080])
        self.assertEqual(rules[50051], [{"podSelector": {"matchLabels": {"app.kubernetes.io/name": "billing"}}}])
        self.assertEqual(rules[9090][0]["namespaceSelector"]["matchLabels"],
                         {"kubernetes.io/metadata.name": "monitoring"})

    def test_example_app_disabled(self):
        _, docs, rendered = self.render_file("example-disabled.yaml")
        self.assertEqual(docs, [], "existing ConfigMap, no example app: nothing to create")
        self.assertIn("ConfigMap tenants-snapshot/tenants.json", rendered["permd/templates/NOTES.txt"])

    def test_native_sidecar(self):
        values, docs, _ = self.render_file("native-sidecar.yaml")
        dep = by_kind(docs, "Deployment")[0]
        self.assertEqual(dep["metadata"]["name"], "authz-example")
        spec = pod_spec(dep)
        self.assertEqual([c["name"] for c in spec["containers"]], ["app"])
        (c,) = spec["initContainers"]
        self.assertEqual(c["name"], "permd")
        self.assertEqual(c["restartPolicy"], "Always")
        self.check_sidecar(dep)
        self.assertNotIn("cpu", c["resources"]["limits"], "limits.cpu: null drops it")
        self.assertEqual(env_of(c)["OTEL_SERVICE_NAME"], "permd")
        (cm,) = by_kind(docs, "ConfigMap")
        self.assertEqual(cm["metadata"]["name"], "authz-data")
        self.assertEqual(cm["data"]["data.yaml"], values["data"]["inline"])

    def test_loopback_only(self):
        _, docs, _ = self.render_file("loopback-only.yaml")
        self.assertEqual([d["kind"] for d in docs], ["Deployment"])
        dep = docs[0]
        c = self.check_sidecar(dep)
        self.assertEqual(env_of(c)["PERMD_LISTEN"], "127.0.0.1:50051")
        self.assertNotIn("PERMD_METRICS_LISTEN", env_of(c))
        self.assertEqual(env_of(c)["PERMD_NO_METRICS"], "true")
        for key in ("ports", "startupProbe", "readinessProbe", "livenessProbe"):
            self.assertNotIn(key, c)
        self.assertNotIn("prometheus.io/scrape", dep["spec"]["template"]["metadata"]["annotations"])

    def test_grpc_tls_probes(self):
        _, docs, _ = self.render_file("grpc-tls-probes.yaml")
        c = self.check_sidecar(by_kind(docs, "Deployment")[0])
        self.assertEqual(c["livenessProbe"]["grpc"], {"port": 50051, "mode": "TLS"})
        self.assertNotIn("PERMD_TLS_CLIENT_CA", env_of(c))

    def test_grpc_tls_probes_are_new_in_kubernetes_1_37(self):
        # The reason grpc-tls-probes.yaml is validated from 1.37 only: the
        # validator does catch a field a version lacks.
        dep = by_kind(objects(render(load_values("grpc-tls-probes.yaml"))), "Deployment")[0]
        with self.assertRaises(kubernetes_validate.ValidationError):
            kubernetes_validate.validate(strip(dep), "1.36", strict=True)


class Rejected(unittest.TestCase):
    """bad-*.yaml: (values file, what the error must name)."""

    SCHEMA = {
        "bad-unknown-key.yaml": ["/exampleApp", "replica"],
        "bad-negative-resources.yaml": ["/resources/limits/memory"],
        "bad-wrong-type.yaml": ["/maxBatch", "integer"],
        "bad-port-range.yaml": ["/port", "maximum"],
        "bad-duration.yaml": ["/database/maxStaleness", "pattern"],
    }
    CHART_CHECKS = {
        "bad-plaintext-beyond-pod.yaml": ["exposeBeyondPod", "tls"],
        "bad-both-data.yaml": ["data.inline", "data.configMap.name"],
        "bad-database-and-data.yaml": ["secrets.existingSecret", "data.configMap.name"],
    }

    def test_every_bad_file_is_listed(self):
        on_disk = {p.name for p in VALUES_DIR.glob("bad-*.yaml")}
        self.assertEqual(on_disk, set(self.SCHEMA) | set(self.CHART_CHECKS))

    def test_schema_rejects_with_the_key(self):
        for name, needles in self.SCHEMA.items():
            with self.subTest(values=name):
                with self.assertRaises(helm.HelmValuesError) as caught:
                    render(load_values(name))
                for needle in needles:
                    self.assertIn(needle, str(caught.exception))
                # helm lint reports the same.
                report = helm.lint(CHART, load_values(name))
                self.assertTrue(report["errors"], f"lint accepted {name}")
                self.assertIn(needles[0], "\n".join(report["errors"]))

    def test_chart_checks_reject_with_the_keys(self):
        for name, needles in self.CHART_CHECKS.items():
            with self.subTest(values=name):
                with self.assertRaises(helm.HelmError) as caught:
                    render(load_values(name))
                for needle in needles:
                    self.assertIn(needle, str(caught.exception))

    def test_plaintext_beyond_pod_when_asked_for(self):
        values = {"exposeBeyondPod": True, "allowPlaintextBeyondPod": True}
        docs = objects(render(values))
        validate_all(self, docs, [FLOOR, NEWEST])
        self.assertEqual(len(by_kind(docs, "Service")), 1)

    def test_parent_values_are_checked_too(self):
        with ParentChart() as parent:
            with self.assertRaises(helm.HelmValuesError) as caught:
                render({"permd": {"maxBatch": 0}}, chart=parent)
            self.assertIn("/maxBatch", str(caught.exception))


class ParentChart:
    """A throwaway application chart depending on helm/permd, written the way
    helm/permd/README.md says: it includes the sidecar in its own pod."""

    CHART_YAML = """\
apiVersion: v2
name: storefront
version: 1.2.3
type: application
dependencies:
  - name: permd
    version: 0.1.0
"""
    VALUES = """\
permd:
  exampleApp:
    enabled: false
  data:
    inline: |
      tenants: []
global:
  environment: production
"""
    DEPLOYMENT = """\
apiVersion: apps/v1
kind: Deployment
metadata:
  name: {{ .Release.Name }}-storefront
  namespace: {{ .Release.Namespace }}
spec:
  selector:
    matchLabels: {app: storefront}
  template:
    metadata:
      labels: {app: storefront}
      annotations:
        {{- include "permd.podAnnotations" (dict "root" . "values" .Values.permd) | nindent 8 }}
    spec:
      containers:
        - name: storefront
          image: storefront:1.2.3
          env:
            - name: PERMD_ADDR
              value: {{ include "permd.clientAddress" (dict "root" . "values" .Values.permd) | quote }}
        {{- include "permd.sidecar" (dict "root" . "values" .Values.permd) | nindent 8 }}
      volumes:
        {{- include "permd.volumes" (dict "root" . "values" .Values.permd) | nindent 8 }}
"""

    def __enter__(self) -> Path:
        self.tmp = tempfile.mkdtemp(prefix="permd-parent-chart-")
        root = Path(self.tmp) / "storefront"
        (root / "templates").mkdir(parents=True)
        (root / "charts").mkdir()
        shutil.copytree(CHART, root / "charts" / "permd")
        (root / "Chart.yaml").write_text(self.CHART_YAML)
        (root / "values.yaml").write_text(self.VALUES)
        (root / "templates" / "deployment.yaml").write_text(self.DEPLOYMENT)
        return root

    def __exit__(self, *exc: object) -> None:
        shutil.rmtree(self.tmp, ignore_errors=True)


class IncludedByAnAppChart(unittest.TestCase):
    def test_sidecar_in_the_parent_pod(self):
        with ParentChart() as parent:
            report = helm.lint(parent, strict=True)
            self.assertEqual(report["errors"], [], report)
            docs = objects(render({}, chart=parent))
        validate_all(self, docs, [FLOOR, NEWEST])
        self.assertEqual(
            sorted((d["kind"], d["metadata"]["name"]) for d in docs),
            [("ConfigMap", "shop-permd-data"), ("Deployment", "shop-storefront")],
        )
        dep = by_kind(docs, "Deployment")[0]
        spec = pod_spec(dep)
        self.assertEqual([c["name"] for c in spec["containers"]], ["storefront", "permd"])
        c = permd_container(spec)
        self.assertEqual(c["securityContext"], SECURITY_CONTEXT)
        # permd's image, not the parent's appVersion or name.
        self.assertEqual(c["image"], "permd:0.1.0")
        self.assertEqual(env_of(c)["PERMD_DATA"], "/etc/permd/data/data.yaml")
        # The volume names the ConfigMap the subchart rendered.
        self.assertEqual(spec["volumes"][0]["configMap"]["name"], "shop-permd-data")
        self.assertEqual(dep["spec"]["template"]["metadata"]["annotations"]["prometheus.io/port"], "9090")


def permd_bin() -> str | None:
    return os.environ.get("PERMD_BIN") or None


@unittest.skipUnless(permd_bin(), "PERMD_BIN not set: no permd binary to check the chart against")
class AgainstTheServer(unittest.TestCase):
    """The chart and the permd binary agree."""

    @classmethod
    def setUpClass(cls):
        out = subprocess.run([permd_bin(), "serve", "--help"], capture_output=True, text=True,
                             timeout=60, check=True).stdout
        # clap: "[env: PERMD_MAX_BATCH=]" then, when there is one, "[default: 100000]";
        # "[env: PERMD_ADMIN_TOKEN]" (no "=") for a setting whose value it hides.
        cls.server_env = {}
        for m in re.finditer(r"\[env: (PERMD_\w+)(?:=[^\]]*)?\](?:\s*\[default: ([^\]]*)\])?", out):
            cls.server_env[m.group(1)] = m.group(2)
        assert cls.server_env, f"no [env: PERMD_...] in `permd serve --help`:\n{out}"

    def sidecar_env_names(self, values: dict[str, Any]) -> set[str]:
        dep = by_kind(objects(render(values)), "Deployment")[0]
        return set(env_of(permd_container(pod_spec(dep))))

    def test_chart_sets_every_server_setting(self):
        # Every way of running the chart, together, sets every PERMD_* the server reads.
        names = set()
        for name in good_values_files():
            if load_values(name).get("exampleApp", {}).get("enabled", True):
                names |= self.sidecar_env_names(load_values(name))
        missing = set(self.server_env) - names - set(NOT_SET_BY_CHART)
        self.assertEqual(missing, set(),
                         "`permd serve` reads these but the chart never sets them: "
                         "add them to helm/permd (values.yaml, schema, permd.env)")

    def test_chart_sets_nothing_the_server_does_not_read(self):
        names = set()
        for name in good_values_files():
            if load_values(name).get("exampleApp", {}).get("enabled", True):
                names |= {n for n in self.sidecar_env_names(load_values(name)) if n.startswith("PERMD_")}
        unknown = names - set(self.server_env)
        self.assertEqual(unknown, set(), "misspelt or removed PERMD_* variables")

    def test_chart_defaults_are_the_servers(self):
        defaults = yaml.safe_load((CHART / "values.yaml").read_text())
        for env, key in {**CHART_DEFAULTS, **DATABASE_ENV}.items():
            if key is None:
                continue
            with self.subTest(env=env):
                self.assertEqual(str(lookup(defaults, key)), self.server_env[env])

    def data_files(self) -> dict[str, str]:
        """Rendered ConfigMap data files, plus the README's --set-file of small.yaml."""
        files = {}
        for name in good_values_files():
            for cm in by_kind(objects(render(load_values(name))), "ConfigMap"):
                for key, text in cm["data"].items():
                    files[f"{name}:{key}"] = text
        small = (REPO / "examples" / "data" / "small.yaml").read_text()
        (cm,) = by_kind(objects(render({"data": {"inline": small}})), "ConfigMap")
        files["examples/data/small.yaml"] = cm["data"]["data.yaml"]
        return files

    def test_rendered_data_files_are_valid_permd_data(self):
        with tempfile.TemporaryDirectory() as tmp:
            for label, text in self.data_files().items():
                with self.subTest(data=label):
                    path = Path(tmp) / "data.yaml"
                    path.write_text(text)
                    run = subprocess.run([permd_bin(), "validate", str(path)],
                                         capture_output=True, text=True, timeout=60)
                    self.assertEqual(run.returncode, 0, f"{label}:\n{run.stdout}{run.stderr}")

    def test_serve_starts_with_the_rendered_environment(self):
        # The sidecar's env as rendered, except: loopback ephemeral ports (this
        # test must not listen beyond the machine), and the data path moved
        # from the pod's mount to a temporary file with the ConfigMap's text.
        docs = objects(render(load_values("inline-data.yaml")))
        c = permd_container(pod_spec(by_kind(docs, "Deployment")[0]))
        env = {k: v for k, v in env_of(c).items() if isinstance(v, str)}
        (cm,) = by_kind(docs, "ConfigMap")
        with tempfile.TemporaryDirectory() as tmp:
            data = Path(tmp) / "data.yaml"
            data.write_text(cm["data"]["data.yaml"])
            self.assertEqual(env["PERMD_DATA"], "/etc/permd/data/data.yaml")
            env["PERMD_DATA"] = str(data)
            env["PERMD_LISTEN"] = "127.0.0.1:0"
            if "PERMD_METRICS_LISTEN" in env:
                env["PERMD_METRICS_LISTEN"] = "127.0.0.1:0"
            base = {k: v for k, v in os.environ.items() if not k.startswith("PERMD_")}
            proc = subprocess.Popen([permd_bin(), *c["args"]], env={**base, **env},
                                    stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                    stderr=subprocess.PIPE, text=True)
            try:
                log = wait_for_line(proc, "permd serving", timeout=60)
                self.assertIn("127.0.0.1:", log)
                self.assertIn(str(data), log)
                if env["PERMD_LOG_FORMAT"] == "json":
                    self.assertEqual(json.loads(log)["fields"]["message"], "permd serving")
                port = int(re.search(r"127\.0\.0\.1:(\d+)", log).group(1))
                socket.create_connection(("127.0.0.1", port), timeout=10).close()
                # permd installs its SIGTERM handler only once the server
                # loop runs, just after it logs "permd serving": a SIGTERM
                # in between kills it outright. Give it a moment.
                time.sleep(1)
                proc.send_signal(signal.SIGTERM)
                self.assertEqual(proc.wait(timeout=30), 0, "SIGTERM drains and exits 0")
            finally:
                if proc.poll() is None:
                    proc.kill()
                    proc.wait()
                proc.stderr.close()

    # What the Secret would hold, for --print-config (which connects to nothing).
    SECRET = {
        "database-url": "postgres://permd:s3cret@postgres.example:5432/permd",
        "admin-token": "an-admin-token-of-32-characters!",
    }

    def test_effective_settings_are_the_values(self):
        # `permd serve --print-config` with each rendered sidecar's env (the
        # Secret's keys filled in): what permd would run with is what the
        # values say.
        for name in good_values_files():
            values = load_values(name)
            deps = by_kind(objects(render(values)), "Deployment")
            if not deps:
                continue
            with self.subTest(values=name):
                with helm.Chart.load(CHART) as chart:
                    v = chart.merge_values(values)
                c = permd_container(pod_spec(deps[0]))
                env = {}
                for k, val in env_of(c).items():
                    if isinstance(val, str):
                        env[k] = val
                    elif "secretKeyRef" in val:
                        self.assertEqual(val["secretKeyRef"]["name"], v["secrets"]["existingSecret"])
                        env[k] = self.SECRET[val["secretKeyRef"]["key"]]
                base = {k: val for k, val in os.environ.items() if not k.startswith("PERMD_")}
                run = subprocess.run([permd_bin(), *c["args"], "--print-config"],
                                     env={**base, **env}, capture_output=True, text=True, timeout=60)
                self.assertEqual(run.returncode, 0, run.stderr)
                effective = yaml.safe_load(run.stdout)
                # permd writes YAML 1.2, where `admin: off` is a string; PyYAML
                # reads YAML 1.1, where it is false: take that one as text.
                effective["admin"] = yaml.load(run.stdout, Loader=yaml.BaseLoader)["admin"]

                host = v["listenHost"] or (
                    "0.0.0.0" if v["exposeBeyondPod"] or v["probes"]["enabled"] else "127.0.0.1")
                data_key = "data.yaml" if v["data"]["inline"] else v["data"]["configMap"]["key"]
                has_data = bool(v["data"]["inline"] or v["data"]["configMap"]["name"])
                tls = v["tls"]["enabled"]
                database = bool(v["secrets"]["existingSecret"])
                expected = {
                    "listen": f"{host}:{v['port']}",
                    "data": f"/etc/permd/data/{data_key}" if has_data else None,
                    "max_batch": v["maxBatch"],
                    "max_message_bytes": v["maxMessageBytes"],
                    "max_concurrent_requests": v["maxConcurrentRequests"],
                    "max_concurrent_streams": v["maxConcurrentStreams"],
                    "metrics_listen": f"0.0.0.0:{v['metrics']['port']}" if v["metrics"]["enabled"] else None,
                    "tls_cert": "/etc/permd/tls/tls.crt" if tls else None,
                    "tls_key": "/etc/permd/tls/tls.key" if tls else None,
                    "tls_client_ca": "/etc/permd/tls/ca.crt" if tls and v["tls"]["clientCa"] else None,
                    "log_format": v["logFormat"],
                    "database_url": "postgres://permd:***@postgres.example:5432/permd" if database else None,
                    "max_staleness": span(v["database"]["maxStaleness"] if database
                                          else self.server_env["PERMD_MAX_STALENESS"]),
                    "changelog_retention": span(v["database"]["changelogRetention"] if database
                                                else self.server_env["PERMD_CHANGELOG_RETENTION"]),
                    "admin": "enabled (token set)" if database else "disabled",
                }
                self.assertEqual({k: effective.get(k, "<absent>") for k in expected}, expected)


def wait_for_line(proc: subprocess.Popen, needle: str, timeout: float) -> str:
    """Reads proc's stderr until a line contains needle; returns that line.

    A thread reads, so lines that arrive together are never stranded in a
    buffer that select() cannot see."""
    lines: queue.Queue[str | None] = queue.Queue()

    def pump() -> None:
        for line in proc.stderr:
            lines.put(line)
        lines.put(None)

    threading.Thread(target=pump, daemon=True).start()
    deadline = time.monotonic() + timeout
    seen = []
    while (left := deadline - time.monotonic()) > 0:
        try:
            line = lines.get(timeout=left)
        except queue.Empty:
            break
        if line is None:
            break
        seen.append(line)
        if needle in line:
            return line
    raise AssertionError(f"no {needle!r} within {timeout}s (exit {proc.poll()}):\n{''.join(seen)}")


if __name__ == "__main__":
    print(f"helm-python-sdk {helm.__version__} (Helm {helm.helm_sdk_version()}), "
          f"kubernetes-validate {kubernetes_validate.__version__}, "
          f"Kubernetes schemas {FLOOR}..{NEWEST}", file=sys.stderr)
    unittest.main()
