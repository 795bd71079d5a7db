#!/usr/bin/env python3
"""Checks the Helm chart in helm/permd with a real Helm library.

Lints the chart, renders it with every values file in tests/helm/values/
(helm-python-sdk: Helm v4's own Go code behind a C ABI, no helm binary),
validates every rendered object against the Kubernetes OpenAPI schemas
(kubernetes-validate, strict: unknown fields are errors; the Prometheus
Operator's PrometheusRule and PodMonitor are CRDs those schemas lack, so
their structure is asserted instead) and asserts on what matters: the permd
sidecar, its securityContext, gRPC probes on the probe and metrics port, the
Authorizer on loopback, env, scrape annotations, volumes, NetworkPolicy,
monitoring objects (the PrometheusRule holds exactly the groups of
files/prometheus-rules.yaml). Values files named bad-*.yaml must be
rejected, by the schema or the chart's own checks, with a message naming
the offending key.

It also includes the sidecar from a throwaway application chart that depends
on this one, the way README.md in the chart says to. In NATS mode (nats.url)
the sidecar follows a `permd relay`, which the chart runs too (relay.enabled):
its Deployment is checked the same way.

With PERMD_BIN set to a permd binary (tests/helm_chart.rs sets it), it also
checks the chart against the real server: every PERMD_* variable `permd serve`
reads is set by the chart with the same defaults (and nothing else is), the
rendered data files pass `permd validate`, `permd serve --print-config` with
each rendered environment shows the values' settings, and `permd serve`
starts with the rendered environment (a data file, and NATS mode with NATS
unreachable) and answers the probes' gRPC health checks and GET /metrics on
its probe and metrics port; likewise every PERMD_* variable `permd relay` reads is set by
the relay's Deployment with the relay's defaults, and `permd relay` starts
with its rendered environment (PostgreSQL and NATS unreachable: it stands by
and retries) and answers its probes' GET /metrics.

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
import urllib.request
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
}
# Kinds of the Prometheus Operator's CRDs: not in the Kubernetes schemas
# kubernetes-validate has, so not validated by it; the tests assert their
# structure (Render.check_prometheus_rule, check_pod_monitor).
CRD_KINDS = {("monitoring.coreos.com/v1", "PrometheusRule"), ("monitoring.coreos.com/v1", "PodMonitor")}
RULES_FILE = CHART / "files" / "prometheus-rules.yaml"

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
    "PERMD_DECISION_LOG": "decisionLog.destination",
    "PERMD_DECISION_LOG_SAMPLE": "decisionLog.sample",
}
# AuthZEN's settings: set only with authzen.enabled (the tenant only when
# authzen.tenant is not empty); neither has a default to compare.
AUTHZEN_ENV = {
    "PERMD_AUTHZEN_LISTEN": None,  # <host of PERMD_LISTEN>:<authzen.port>
    "PERMD_AUTHZEN_TENANT": None,  # authzen.tenant
}
# The settings of PostgreSQL mode: set exactly when secrets.existingSecret is
# (without a database they mean nothing), with their values keys.
DATABASE_ENV = {
    "PERMD_DATABASE_URL": None,  # the Secret's database-url
    "PERMD_ADMIN_TOKEN": None,  # the Secret's admin-token (optional key)
    "PERMD_MAX_STALENESS": "database.maxStaleness",
    "PERMD_CHANGELOG_RETENTION": "database.changelogRetention",
}
# The settings of NATS mode: set only with nats.url (PERMD_NATS_CREDS,
# PERMD_NATS_TOKEN and PERMD_TENANTS when their values are), with their
# values keys. PERMD_MAX_STALENESS is both modes' (nats.maxStaleness here).
NATS_ENV = {
    "PERMD_NATS_URL": None,  # nats.url: no default, "" is NATS mode off
    "PERMD_NATS_PREFIX": "nats.prefix",
    "PERMD_NATS_CREDS": None,  # the mounted nats.credentials Secret key
    "PERMD_NATS_TOKEN": None,  # the nats.token Secret key
    "PERMD_TENANTS": None,  # tenants, comma-joined
    "PERMD_MAX_STALENESS": "nats.maxStaleness",
}
NATS_CREDS_PATH = "/etc/permd/nats/nats.creds"

# PERMD_* variables `permd relay` reads that the relay's Deployment leaves
# unset, and why.
RELAY_NOT_SET_BY_CHART = {
    "PERMD_NO_METRICS": "the probes GET /metrics: the relay always serves it",
}
# The chart's value for each `permd relay` setting with a default.
RELAY_DEFAULTS = {
    "PERMD_NATS_URL": None,  # required by the chart (relay.enabled needs nats.url)
    "PERMD_NATS_PREFIX": "nats.prefix",
    "PERMD_SNAPSHOT_EVERY": "relay.snapshotEvery",
    "PERMD_SNAPSHOT_INTERVAL": "relay.snapshotInterval",
    "PERMD_STREAM_MAX_AGE": "relay.streamMaxAge",
    "PERMD_SNAPSHOT_FORMAT": "relay.snapshotFormat",
    "PERMD_METRICS_LISTEN": None,  # 0.0.0.0:<relay.metricsPort>: see test_relay_defaults
    "PERMD_LOG_FORMAT": None,  # logFormat, shared with the sidecar (json, not permd's pretty)
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


def sidecar_deployments(docs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The Deployments whose pods have a permd sidecar (not the relay's)."""
    return [d for d in by_kind(docs, "Deployment")
            if any(c["name"] == "permd"
                   for c in pod_spec(d).get("containers", []) + pod_spec(d).get("initContainers", []))]


def relay_deployments(docs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [d for d in by_kind(docs, "Deployment") if d["metadata"]["name"].endswith("-relay")]


def relay_container(deployment: dict[str, Any]) -> dict[str, Any]:
    (c,) = pod_spec(deployment)["containers"]
    assert c["name"] == "relay", c["name"]
    return c


def env_of(container: dict[str, Any]) -> dict[str, Any]:
    """name → value (a string), or the valueFrom object."""
    out = {}
    for e in container.get("env", []):
        assert e["name"] not in out, f"env {e['name']} set twice"
        out[e["name"]] = e.get("value", e.get("valueFrom"))
    return out


def validate_all(test: unittest.TestCase, docs: list[dict[str, Any]], versions: list[str]) -> None:
    for doc in docs:
        if (doc["apiVersion"], doc["kind"]) in CRD_KINDS:
            continue  # no schema for CRDs: their tests assert the structure
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
        # (`permd serve` refuses --data with --database-url); NATS mode's
        # come with neither (it refuses --nats-url with either).
        database = "PERMD_DATABASE_URL" in env
        nats = "PERMD_NATS_URL" in env
        self.assertFalse(database and nats, "a database and NATS at once")
        for name in DATABASE_ENV:
            if name in NATS_ENV:
                self.assertEqual(name in env, database or nats, name)
            else:
                self.assertEqual(name in env, database, name)
        for name in NATS_ENV:
            if name not in DATABASE_ENV and not nats:
                self.assertNotIn(name, env)
        self.assertEqual("PERMD_NATS_PREFIX" in env, nats)
        if database or nats:
            self.assertNotIn("PERMD_DATA", env)
        self.assertIsInstance(env["PERMD_DECISION_LOG"], str)
        self.assertIsInstance(env["PERMD_DECISION_LOG_SAMPLE"], str)
        if "PERMD_AUTHZEN_TENANT" in env:
            self.assertIn("PERMD_AUTHZEN_LISTEN", env)
        # The Authorizer (and AuthZEN) on loopback unless a port of theirs
        # is declared, i.e. exposeBeyondPod; AuthZEN on the same host.
        ports = {p["name"]: p["containerPort"] for p in c.get("ports", [])}
        listen_host = env["PERMD_LISTEN"].rsplit(":", 1)[0]
        self.assertEqual(listen_host == "127.0.0.1", "permd-grpc" not in ports, env["PERMD_LISTEN"])
        if "PERMD_AUTHZEN_LISTEN" in env:
            host, port = env["PERMD_AUTHZEN_LISTEN"].rsplit(":", 1)
            self.assertEqual(host, listen_host)
            self.assertEqual("permd-authzen" in ports, host != "127.0.0.1")
        else:
            self.assertNotIn("permd-authzen", ports)
        # The probes: native gRPC on the probe and metrics port, which binds
        # beyond loopback and is plaintext (no tcpSocket, no mode: TLS).
        probes = [c[k] for k in ("startupProbe", "readinessProbe", "livenessProbe") if k in c]
        self.assertIn(len(probes), (0, 3))
        if probes:
            host, port = env["PERMD_METRICS_LISTEN"].rsplit(":", 1)
            self.assertFalse(host.startswith("127."), "the kubelet dials the pod IP")
            self.assertIn(int(port), ports.values(), "the probe port is declared")
            for probe in probes:
                self.assertEqual(set(probe["grpc"]) - {"service"}, {"port"})
                self.assertEqual(probe["grpc"]["port"], int(port))
                self.assertNotIn("tcpSocket", probe)
            self.assertEqual(c["readinessProbe"]["grpc"]["service"], "permd.v1.Authorizer")
            self.assertNotIn("service", c["livenessProbe"]["grpc"])
            self.assertNotIn("service", c["startupProbe"]["grpc"])
        # A decision log file gets a writable volume at its directory.
        if env["PERMD_DECISION_LOG"].startswith("/"):
            mounts = {m["name"]: m for m in c["volumeMounts"]}
            self.assertEqual(mounts["permd-decision-log"]["mountPath"],
                             os.path.dirname(env["PERMD_DECISION_LOG"]))
            self.assertNotIn("readOnly", mounts["permd-decision-log"])
        else:
            self.assertNotIn("permd-decision-log", [m["name"] for m in c.get("volumeMounts", [])])
        return c

    def check_prometheus_rule(self, rule: dict[str, Any]) -> None:
        """The PrometheusRule (a CRD: not schema-validated) holds exactly the
        rule file's groups."""
        self.assertEqual(rule["apiVersion"], "monitoring.coreos.com/v1")
        self.assertEqual(set(rule), {"apiVersion", "kind", "metadata", "spec", "_template"})
        self.assertEqual(set(rule["metadata"]), {"name", "namespace", "labels"})
        self.assertEqual(set(rule["spec"]), {"groups"})
        expected = yaml.safe_load(RULES_FILE.read_text())
        self.assertEqual(rule["spec"]["groups"], expected["groups"])
        for labels in rule["metadata"]["labels"].items():
            self.assertTrue(all(isinstance(x, str) for x in labels), labels)

    def check_pod_monitor(self, monitor: dict[str, Any], deployment: dict[str, Any], container: dict[str, Any]) -> None:
        """A PodMonitor (a CRD: not schema-validated) selects exactly the
        Deployment's pods and scrapes a port their container declares."""
        self.assertEqual(monitor["apiVersion"], "monitoring.coreos.com/v1")
        self.assertEqual(set(monitor), {"apiVersion", "kind", "metadata", "spec", "_template"})
        self.assertEqual(set(monitor["spec"]), {"selector", "podMetricsEndpoints"})
        self.assertEqual(monitor["spec"]["selector"], {"matchLabels": deployment["spec"]["selector"]["matchLabels"]})
        (endpoint,) = monitor["spec"]["podMetricsEndpoints"]
        self.assertLessEqual(set(endpoint), {"port", "path", "interval"})
        self.assertIn(endpoint["port"], [p["name"] for p in container["ports"]])
        self.assertEqual(endpoint["path"], "/metrics")
        self.assertNotIn("prometheus.io/scrape", deployment["spec"]["template"]["metadata"].get("annotations", {}),
                         "scraped by the PodMonitor, not by annotation too")

    def check_relay(self, deployment: dict[str, Any]) -> dict[str, Any]:
        """What holds in every rendering of the relay: returns its container."""
        spec = pod_spec(deployment)
        self.assertIs(spec["securityContext"]["runAsNonRoot"], True)
        self.assertEqual(spec["securityContext"]["seccompProfile"], {"type": "RuntimeDefault"})
        self.assertIs(spec["automountServiceAccountToken"], False)
        c = relay_container(deployment)
        self.assertEqual(c["securityContext"], SECURITY_CONTEXT)
        self.assertEqual(c["args"], ["relay"])
        self.assertIn("requests", c["resources"])
        self.assertIn("limits", c["resources"])
        # No gRPC: one port, the metrics the probes GET.
        (port,) = c["ports"]
        self.assertEqual(port["name"], "metrics")
        for probe in ("readinessProbe", "livenessProbe"):
            self.assertEqual(c[probe]["httpGet"], {"path": "/metrics", "port": "metrics"}, probe)
        self.assertNotIn("startupProbe", c)
        env = env_of(c)
        self.assertTrue(env["PERMD_METRICS_LISTEN"].endswith(f":{port['containerPort']}"))
        self.assertEqual(set(env["PERMD_DATABASE_URL"]), {"secretKeyRef"})
        for name in ("PERMD_NATS_URL", "PERMD_NATS_PREFIX", "PERMD_SNAPSHOT_EVERY",
                     "PERMD_SNAPSHOT_INTERVAL", "PERMD_STREAM_MAX_AGE", "PERMD_LOG_FORMAT", "RUST_LOG"):
            self.assertIsInstance(env[name], str, name)
        for absent in ("PERMD_NO_METRICS", "PERMD_LISTEN", "PERMD_TENANTS", "PERMD_MAX_STALENESS"):
            self.assertNotIn(absent, env)
        annotations = deployment["spec"]["template"]["metadata"]["annotations"]
        self.assertEqual(annotations["prometheus.io/port"], str(port["containerPort"]))
        self.assertEqual(annotations["prometheus.io/path"], "/metrics")
        # The standbys prefer other nodes than the active relay's.
        (term,) = spec["affinity"]["podAntiAffinity"]["preferredDuringSchedulingIgnoredDuringExecution"]
        self.assertEqual(term["podAffinityTerm"]["topologyKey"], "kubernetes.io/hostname")
        self.assertEqual(term["podAffinityTerm"]["labelSelector"]["matchLabels"],
                         deployment["spec"]["selector"]["matchLabels"])
        self.assertEqual(deployment["spec"]["selector"]["matchLabels"],
                         {k: v for k, v in deployment["spec"]["template"]["metadata"]["labels"].items()
                          if k in deployment["spec"]["selector"]["matchLabels"]})
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
        # The Authorizer on the pod's loopback: the app calls it there, the
        # probes go to the probe and metrics port on the pod IP.
        self.assertEqual(env["PERMD_LISTEN"], "127.0.0.1:50051")
        self.assertEqual(env["PERMD_MAX_BATCH"], "100000")
        self.assertEqual(env["PERMD_MAX_MESSAGE_BYTES"], "16777216")
        self.assertEqual(env["PERMD_MAX_CONCURRENT_REQUESTS"], "256")
        self.assertEqual(env["PERMD_MAX_CONCURRENT_STREAMS"], "32")
        self.assertEqual(env["PERMD_METRICS_LISTEN"], "0.0.0.0:9090")
        self.assertEqual(env["RUST_LOG"], "info")
        self.assertEqual(env["PERMD_LOG_FORMAT"], "json")
        self.assertEqual(env["PERMD_DECISION_LOG"], "off")
        self.assertEqual(env["PERMD_DECISION_LOG_SAMPLE"], "checks=0.1,denials=1,batches=1")
        for absent in ("PERMD_NO_METRICS", "PERMD_DATA", "PERMD_TLS_CERT", "PERMD_TLS_KEY", "PERMD_TLS_CLIENT_CA",
                       "PERMD_API_TOKEN", *DATABASE_ENV, *AUTHZEN_ENV):
            self.assertNotIn(absent, env)
        self.assertNotIn("volumeMounts", c)

        # Native gRPC probes on the probe and metrics port: startup, readiness, liveness.
        self.assertEqual(c["startupProbe"]["grpc"], {"port": 9090})
        self.assertEqual(c["readinessProbe"]["grpc"], {"port": 9090, "service": "permd.v1.Authorizer"})
        self.assertEqual(c["livenessProbe"]["grpc"], {"port": 9090})
        self.assertGreaterEqual(
            c["startupProbe"]["periodSeconds"] * c["startupProbe"]["failureThreshold"], 60,
            "a minute or more to load data",
        )
        # Only the probe and metrics port is reachable beyond the pod.
        ports = {p["name"]: p["containerPort"] for p in c["ports"]}
        self.assertEqual(ports, {"metrics": 9090})

        annotations = dep["spec"]["template"]["metadata"]["annotations"]
        self.assertEqual(annotations["prometheus.io/scrape"], "true")
        self.assertEqual(annotations["prometheus.io/port"], "9090")
        self.assertEqual(annotations["prometheus.io/path"], "/metrics")
        self.assertIn("checksum/permd-data", annotations)

        app = spec["containers"][0]
        self.assertEqual(env_of(app)["PERMD_ADDR"], "http://127.0.0.1:50051")

        # The NetworkPolicy admits the app port and metrics only.
        np = by_kind(docs, "NetworkPolicy")[0]
        self.assertEqual(np["spec"]["podSelector"]["matchLabels"],
                         dep["spec"]["selector"]["matchLabels"])
        self.assertEqual(dep["spec"]["selector"]["matchLabels"],
                         {k: v for k, v in dep["spec"]["template"]["metadata"]["labels"].items()
                          if k in dep["spec"]["selector"]["matchLabels"]})
        admitted = sorted(p["port"] for rule in np["spec"]["ingress"] for p in rule["ports"])
        self.assertEqual(admitted, [8080, 9090])
        notes = rendered["permd/templates/NOTES.txt"]
        self.assertIn("built-in demo tenant", notes)
        self.assertIn("Probes and metrics: plaintext on 0.0.0.0:9090", notes)
        self.assertNotIn("WARNING", notes)

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
        self.assertEqual(env["PERMD_API_TOKEN"],
                         {"secretKeyRef": {"name": "permd-secrets", "key": "api-token", "optional": True}})
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
        # Mutual TLS on the Authorizer's port; the probes' port is plaintext,
        # so native gRPC probes still check the Authorizer's readiness.
        self.assertEqual(c["readinessProbe"]["grpc"], {"port": 9090, "service": "permd.v1.Authorizer"})
        self.assertEqual(env["PERMD_LISTEN"], "127.0.0.1:50051")
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
        self.assertEqual(env["PERMD_API_TOKEN"],
                         {"secretKeyRef": {"name": "permd-db", "key": "api-token", "optional": True}})
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
        self.assertEqual({p["name"]: p["containerPort"] for p in c["ports"]},
                         {"permd-grpc": 50051, "metrics": 9090})
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

    def test_probes_without_metrics(self):
        # The probes need the listener: it stays on, but nothing scrapes it and
        # no other pod is admitted to it (the kubelet comes from the node).
        _, docs, rendered = self.render_file("probes-without-metrics.yaml")
        (dep,) = sidecar_deployments(docs)
        c = self.check_sidecar(dep)
        env = env_of(c)
        self.assertEqual(env["PERMD_METRICS_LISTEN"], "0.0.0.0:9090")
        self.assertNotIn("PERMD_NO_METRICS", env)
        self.assertEqual(c["ports"], [{"name": "metrics", "containerPort": 9090, "protocol": "TCP"}])
        self.assertEqual(c["livenessProbe"]["grpc"], {"port": 9090})
        self.assertNotIn("prometheus.io/scrape", dep["spec"]["template"]["metadata"]["annotations"])
        (np,) = by_kind(docs, "NetworkPolicy")
        self.assertEqual([p["port"] for rule in np["spec"]["ingress"] for p in rule["ports"]], [8080])
        self.assertIn("Probes: plaintext on 0.0.0.0:9090 (gRPC health)", rendered["permd/templates/NOTES.txt"])

    def test_ipv6_listen_host(self):
        # listenHost "[::]" is the host of what binds beyond the pod; the
        # Authorizer stays on loopback unless exposed.
        for expose, listen in ((False, "127.0.0.1:50051"), (True, "[::]:50051")):
            with self.subTest(exposeBeyondPod=expose):
                values = {"listenHost": "[::]", "exposeBeyondPod": expose, "allowPlaintextBeyondPod": True}
                docs = objects(render(values))
                validate_all(self, docs, [FLOOR, NEWEST])
                c = self.check_sidecar(sidecar_deployments(docs)[0])
                self.assertEqual(env_of(c)["PERMD_LISTEN"], listen)
                self.assertEqual(env_of(c)["PERMD_METRICS_LISTEN"], "[::]:9090")

    def test_authzen_on_loopback(self):
        _, docs, rendered = self.render_file("authzen.yaml")
        (dep,) = sidecar_deployments(docs)
        c = self.check_sidecar(dep)
        env = env_of(c)
        self.assertEqual(env["PERMD_AUTHZEN_LISTEN"], "127.0.0.1:8282")
        self.assertEqual(env["PERMD_AUTHZEN_TENANT"], "acme")
        self.assertEqual(env["PERMD_DECISION_LOG"], "stdout")
        self.assertEqual(env["PERMD_DECISION_LOG_SAMPLE"], "checks=0.01,denials=0.5,batches=1")
        self.assertEqual({p["name"] for p in c["ports"]}, {"metrics"}, "AuthZEN on loopback: no port declared")
        self.assertEqual(by_kind(docs, "Service"), [])
        (np,) = by_kind(docs, "NetworkPolicy")
        self.assertEqual(sorted(p["port"] for rule in np["spec"]["ingress"] for p in rule["ports"]), [8080, 9090])
        notes = rendered["permd/templates/NOTES.txt"]
        self.assertIn("AuthZEN (HTTP/JSON): 127.0.0.1:8282; default tenant acme.", notes)
        self.assertIn("Decision log: stdout", notes)
        # No tenant: no PERMD_AUTHZEN_TENANT.
        env = env_of(permd_container(pod_spec(by_kind(objects(render({"authzen": {"enabled": True}})),
                                                      "Deployment")[0])))
        self.assertEqual(env["PERMD_AUTHZEN_LISTEN"], "127.0.0.1:8181")
        self.assertNotIn("PERMD_AUTHZEN_TENANT", env)

    def test_authzen_beyond_pod(self):
        _, docs, _ = self.render_file("authzen-beyond-pod.yaml")
        (dep,) = sidecar_deployments(docs)
        c = self.check_sidecar(dep)
        env = env_of(c)
        self.assertEqual(env["PERMD_LISTEN"], "0.0.0.0:50051")
        self.assertEqual(env["PERMD_AUTHZEN_LISTEN"], "0.0.0.0:8181")
        self.assertEqual({p["name"]: p["containerPort"] for p in c["ports"]},
                         {"permd-grpc": 50051, "permd-authzen": 8181, "metrics": 9090})
        (svc,) = by_kind(docs, "Service")
        self.assertEqual(svc["spec"]["ports"], [
            {"name": "grpc", "port": 50051, "targetPort": "permd-grpc", "protocol": "TCP"},
            {"name": "authzen", "port": 8181, "targetPort": "permd-authzen", "protocol": "TCP"},
        ])
        (np,) = by_kind(docs, "NetworkPolicy")
        billing = [{"podSelector": {"matchLabels": {"app.kubernetes.io/name": "billing"}}}]
        rules = [(sorted(p["port"] for p in r["ports"]), r.get("from")) for r in np["spec"]["ingress"]]
        self.assertEqual(rules, [([8080], None), ([9090], None), ([8181, 50051], billing)])

    def test_decision_log_file(self):
        _, docs, _ = self.render_file("decision-log-file.yaml")
        (dep,) = sidecar_deployments(docs)
        c = self.check_sidecar(dep)
        self.assertEqual(env_of(c)["PERMD_DECISION_LOG"], "/var/log/permd/decisions.jsonl")
        self.assertEqual(c["volumeMounts"], [{"name": "permd-decision-log", "mountPath": "/var/log/permd"}])
        self.assertEqual(pod_spec(dep)["volumes"], [{"name": "permd-decision-log", "emptyDir": {}}])
        self.assertIs(c["securityContext"]["readOnlyRootFilesystem"], True)

    def test_decision_log_off_unquoted(self):
        # `destination: off` unquoted is YAML's false: it means off.
        env = env_of(permd_container(pod_spec(by_kind(
            objects(render(yaml.safe_load("decisionLog: {destination: off}"))), "Deployment")[0])))
        self.assertEqual(env["PERMD_DECISION_LOG"], "off")

    def test_monitoring(self):
        values, docs, rendered = self.render_file("monitoring.yaml")
        kinds = sorted((d["kind"], d["metadata"]["name"]) for d in docs)
        self.assertEqual(kinds, [
            ("Deployment", "shop-permd-example"), ("Deployment", "shop-permd-relay"),
            ("NetworkPolicy", "shop-permd-example"), ("NetworkPolicy", "shop-permd-relay"),
            ("PodMonitor", "shop-permd-example"), ("PodMonitor", "shop-permd-relay"),
            ("PrometheusRule", "shop-permd"),
        ])
        (rule,) = by_kind(docs, "PrometheusRule")
        self.check_prometheus_rule(rule)
        self.assertEqual(rule["metadata"]["labels"]["release"], "kube-prometheus-stack")
        self.assertEqual(rule["metadata"]["labels"]["app.kubernetes.io/part-of"], "permd")
        monitors = {m["metadata"]["name"]: m for m in by_kind(docs, "PodMonitor")}
        (dep,) = sidecar_deployments(docs)
        self.check_pod_monitor(monitors["shop-permd-example"], dep, self.check_sidecar(dep))
        (relay,) = relay_deployments(docs)
        self.check_pod_monitor(monitors["shop-permd-relay"], relay, relay_container(relay))
        for m in monitors.values():
            self.assertEqual(m["spec"]["podMetricsEndpoints"][0]["interval"], "30s")
            self.assertEqual(m["metadata"]["labels"]["team.example.com/owner"], "platform")
            self.assertEqual(m["metadata"]["namespace"], NAMESPACE)
        self.assertIn("PrometheusRule shop-permd", rendered["permd/templates/NOTES.txt"])

    def test_monitoring_alone(self):
        # The rule alone (e.g. in a release of its own), no scrape changes.
        docs = objects(render({"exampleApp": {"enabled": False},
                               "monitoring": {"prometheusRule": {"enabled": True}}}))
        (rule,) = docs
        self.check_prometheus_rule(rule)
        # A PodMonitor needs pods to scrape: none for an example app without metrics.
        docs = objects(render({"metrics": {"enabled": False}, "monitoring": {"podMonitor": {"enabled": True}}}))
        self.assertEqual(by_kind(docs, "PodMonitor"), [])

    def test_grpc_tls_probes_is_ignored(self):
        # Values from an older chart: accepted, ignored, and NOTES.txt says so.
        # The probes are plaintext gRPC on the probe port (valid from the
        # floor, 1.27: no mode: TLS), even with mutual TLS.
        _, docs, rendered = self.render_file("grpc-tls-probes.yaml")
        c = self.check_sidecar(by_kind(docs, "Deployment")[0])
        self.assertEqual(c["livenessProbe"]["grpc"], {"port": 9090})
        self.assertNotIn("PERMD_TLS_CLIENT_CA", env_of(c))
        self.assertIn("WARNING: probes.grpcTls is ignored", rendered["permd/templates/NOTES.txt"])
        values = {"tls": {"enabled": True, "secretName": "t", "clientCa": True}, "probes": {"grpcTls": True}}
        c = permd_container(pod_spec(by_kind(objects(render(values)), "Deployment")[0]))
        self.assertEqual(c["readinessProbe"]["grpc"], {"port": 9090, "service": "permd.v1.Authorizer"})

    def test_validator_catches_a_field_a_version_lacks(self):
        # What makes MIN_VERSION necessary: restartPolicy on an init
        # container is not in 1.27's schema (alpha in 1.28, on in 1.29), and
        # the validator says so.
        dep = by_kind(objects(render(load_values("native-sidecar.yaml"))), "Deployment")[0]
        with self.assertRaises(kubernetes_validate.ValidationError):
            kubernetes_validate.validate(strip(dep), "1.27", strict=True)

    def test_nats_mode_and_relay(self):
        values, docs, rendered = self.render_file("nats.yaml")
        self.assertEqual(
            sorted((d["kind"], d["metadata"]["name"]) for d in docs),
            [("Deployment", "shop-permd-example"), ("Deployment", "shop-permd-relay"),
             ("NetworkPolicy", "shop-permd-example"), ("NetworkPolicy", "shop-permd-relay")],
        )
        (dep,) = sidecar_deployments(docs)
        c = self.check_sidecar(dep)
        env = env_of(c)
        self.assertEqual(env["PERMD_NATS_URL"], "nats://nats.nats.svc.cluster.local:4222")
        self.assertEqual(env["PERMD_NATS_PREFIX"], "shop-authz")
        self.assertEqual(env["PERMD_NATS_CREDS"], NATS_CREDS_PATH)
        self.assertEqual(env["PERMD_TENANTS"], "acme,globex")
        self.assertEqual(env["PERMD_MAX_STALENESS"], "1m")
        # No database connection of its own, no file.
        for absent in ("PERMD_DATABASE_URL", "PERMD_ADMIN_TOKEN", "PERMD_CHANGELOG_RETENTION",
                       "PERMD_DATA", "PERMD_NATS_TOKEN"):
            self.assertNotIn(absent, env)
        # The credentials file: the Secret's key, mounted read-only.
        creds_mount = {"name": "permd-nats-creds", "mountPath": "/etc/permd/nats", "readOnly": True}
        creds_volume = {
            "name": "permd-nats-creds",
            "secret": {"secretName": "permd-nats", "defaultMode": 0o444,
                       "items": [{"key": "sidecar.creds", "path": "nats.creds"}]},
        }
        self.assertEqual(c["volumeMounts"], [creds_mount])
        self.assertEqual(pod_spec(dep)["volumes"], [creds_volume])
        # Readiness of permd.v1.Authorizer: NOT_SERVING until the first snapshot.
        self.assertEqual(c["readinessProbe"]["grpc"], {"port": 9090, "service": "permd.v1.Authorizer"})
        notes = rendered["permd/templates/NOTES.txt"]
        self.assertIn("NATS at nats://nats.nats.svc.cluster.local:4222 (prefix shop-authz)", notes)
        self.assertIn("tenants acme, globex only", notes)
        self.assertIn("shop-permd-relay", notes)

        # The relay: two replicas of the sidecar's image, the same NATS settings.
        (relay,) = relay_deployments(docs)
        self.assertEqual(relay["spec"]["replicas"], 2)
        r = self.check_relay(relay)
        self.assertEqual(r["image"], "permd:0.1.0")
        self.assertEqual(r["imagePullPolicy"], "IfNotPresent")
        renv = env_of(r)
        self.assertEqual(renv["PERMD_DATABASE_URL"],
                         {"secretKeyRef": {"name": "permd-relay-db", "key": "database-url"}})
        for name in ("PERMD_NATS_URL", "PERMD_NATS_PREFIX", "PERMD_NATS_CREDS"):
            self.assertEqual(renv[name], env[name], name)
        self.assertEqual(renv["PERMD_SNAPSHOT_EVERY"], "5000")
        self.assertEqual(renv["PERMD_SNAPSHOT_INTERVAL"], "2m")
        self.assertEqual(renv["PERMD_STREAM_MAX_AGE"], "12h")
        self.assertEqual(renv["PERMD_METRICS_LISTEN"], "0.0.0.0:9091")
        self.assertEqual(renv["PERMD_LOG_FORMAT"], "json")
        self.assertEqual(r["ports"], [{"name": "metrics", "containerPort": 9091, "protocol": "TCP"}])
        self.assertEqual(r["volumeMounts"], [creds_mount])
        self.assertEqual(pod_spec(relay)["volumes"], [creds_volume])
        # Its NetworkPolicy admits the metrics port only, to the relay's pods.
        (np,) = [n for n in by_kind(docs, "NetworkPolicy") if n["metadata"]["name"] == "shop-permd-relay"]
        self.assertEqual(np["spec"]["podSelector"]["matchLabels"], relay["spec"]["selector"]["matchLabels"])
        self.assertEqual([p["port"] for rule in np["spec"]["ingress"] for p in rule["ports"]], [9091])
        # The relay's pods are not the example app's.
        self.assertNotEqual(relay["spec"]["selector"]["matchLabels"], dep["spec"]["selector"]["matchLabels"])

    def test_nats_token(self):
        _, docs, _ = self.render_file("nats-token.yaml")
        self.assertEqual(relay_deployments(docs), [], "relay.enabled is false by default")
        (dep,) = sidecar_deployments(docs)
        c = self.check_sidecar(dep)
        env = env_of(c)
        self.assertEqual(env["PERMD_NATS_TOKEN"],
                         {"secretKeyRef": {"name": "permd-nats-token", "key": "token"}})
        self.assertEqual(env["PERMD_NATS_PREFIX"], "permd")
        self.assertEqual(env["PERMD_MAX_STALENESS"], "30s")
        # An API token in NATS mode, where there is no secrets.existingSecret.
        self.assertEqual(env["PERMD_API_TOKEN"],
                         {"secretKeyRef": {"name": "storefront-permd", "key": "permd-api-token"}})
        for absent in ("PERMD_NATS_CREDS", "PERMD_TENANTS", *DATABASE_ENV.keys() - {"PERMD_MAX_STALENESS"}):
            self.assertNotIn(absent, env)
        self.assertNotIn("volumeMounts", c)
        self.assertNotIn("volumes", pod_spec(dep))

    def test_relay_alone(self):
        _, docs, rendered = self.render_file("nats-token-relay-only.yaml")
        self.assertEqual(
            sorted((d["kind"], d["metadata"]["name"]) for d in docs),
            [("Deployment", "shop-permd-relay"), ("NetworkPolicy", "shop-permd-relay")],
        )
        (relay,) = relay_deployments(docs)
        self.assertEqual(relay["spec"]["replicas"], 3)
        r = self.check_relay(relay)
        self.assertEqual(r["image"], "registry.example.com/platform/permd:0.1.1")
        env = env_of(r)
        self.assertEqual(env["PERMD_DATABASE_URL"], {"secretKeyRef": {"name": "permd-db", "key": "relay-url"}})
        self.assertEqual(env["PERMD_NATS_URL"], "tls://nats.example.com:4222")
        self.assertEqual(env["PERMD_NATS_TOKEN"],
                         {"secretKeyRef": {"name": "permd-nats-token", "key": "token"}})
        self.assertNotIn("PERMD_NATS_CREDS", env)
        self.assertNotIn("volumeMounts", r)
        self.assertNotIn("volumes", pod_spec(relay))
        self.assertEqual(r["resources"]["limits"], {"memory": "1Gi"}, "limits.cpu: null drops it")
        self.assertIn("relay (3 replicas", rendered["permd/templates/NOTES.txt"])

    RELAY_MINIMAL = {"nats": {"url": "nats://nats:4222"},
                     "relay": {"enabled": True, "database": {"existingSecret": "permd-db"}}}

    def test_relay_defaults(self):
        docs = objects(render(self.RELAY_MINIMAL))
        validate_all(self, docs, [FLOOR, NEWEST])
        (relay,) = relay_deployments(docs)
        self.assertEqual(relay["spec"]["replicas"], 2)
        r = self.check_relay(relay)
        self.assertEqual(r["image"], "permd:0.1.0")
        env = env_of(r)
        self.assertEqual(env["PERMD_DATABASE_URL"], {"secretKeyRef": {"name": "permd-db", "key": "database-url"}})
        self.assertEqual(env["PERMD_NATS_PREFIX"], "permd")
        self.assertEqual(env["PERMD_SNAPSHOT_EVERY"], "10000")
        self.assertEqual(env["PERMD_SNAPSHOT_INTERVAL"], "5m")
        self.assertEqual(env["PERMD_STREAM_MAX_AGE"], "24h")
        self.assertEqual(env["PERMD_SNAPSHOT_FORMAT"], "3")
        self.assertEqual(env["PERMD_METRICS_LISTEN"], "0.0.0.0:9091")
        self.assertEqual(r["resources"], {"requests": {"cpu": "100m", "memory": "128Mi"},
                                          "limits": {"cpu": "1", "memory": "512Mi"}})

    def test_relay_image(self):
        digest = "sha256:" + "ab" * 32
        cases = [
            # The sidecar's image, digest included, when relay.image.repository is empty.
            ({"image": {"repository": "reg/permd", "tag": "0.2.0", "digest": digest, "pullPolicy": "Always"}},
             f"reg/permd@{digest}", "Always"),
            # Its own repository: its tag, else the sidecar's tag.
            ({"image": {"tag": "0.2.0"}, "relay": {"image": {"repository": "other/permd"}}},
             "other/permd:0.2.0", "IfNotPresent"),
            ({"relay": {"image": {"repository": "other/permd", "tag": "0.3.0", "pullPolicy": "Never"}}},
             "other/permd:0.3.0", "Never"),
            ({"relay": {"image": {"repository": "other/permd", "digest": digest}}},
             f"other/permd@{digest}", "IfNotPresent"),
        ]
        for values, image, pull in cases:
            with self.subTest(values=values):
                merged = json.loads(json.dumps(self.RELAY_MINIMAL))
                for key, sub in values.items():
                    if key == "relay":
                        merged["relay"] = {**merged["relay"], **sub}
                    else:
                        merged[key] = sub
                (relay,) = relay_deployments(objects(render(merged)))
                self.assertEqual(relay_container(relay)["image"], image)
                self.assertEqual(relay_container(relay)["imagePullPolicy"], pull)

    def test_relay_metrics_on_ipv6(self):
        # listenHost "[::]" (IPv6-only clusters) is the relay's metrics host too.
        values = {**self.RELAY_MINIMAL, "listenHost": "[::]"}
        (relay,) = relay_deployments(objects(render(values)))
        self.assertEqual(env_of(relay_container(relay))["PERMD_METRICS_LISTEN"], "[::]:9091")

    def test_relay_without_network_policy(self):
        values = {**self.RELAY_MINIMAL, "networkPolicy": {"enabled": False}}
        docs = objects(render(values))
        self.assertEqual(by_kind(docs, "NetworkPolicy"), [])
        self.assertEqual(len(relay_deployments(docs)), 1)


class Rejected(unittest.TestCase):
    """bad-*.yaml: (values file, what the error must name)."""

    SCHEMA = {
        "bad-unknown-key.yaml": ["/exampleApp", "replica"],
        "bad-negative-resources.yaml": ["/resources/limits/memory"],
        "bad-wrong-type.yaml": ["/maxBatch", "integer"],
        "bad-port-range.yaml": ["/port", "maximum"],
        "bad-duration.yaml": ["/database/maxStaleness", "pattern"],
        "bad-nats-url.yaml": ["/nats/url", "pattern"],
        "bad-nats-prefix.yaml": ["/nats/prefix", "pattern"],
        "bad-relay-snapshot-interval.yaml": ["/relay/snapshotInterval", "pattern"],
        "bad-tenants-comma.yaml": ["/tenants/0", "pattern"],
        "bad-decision-log-sample.yaml": ["/decisionLog/sample", "pattern"],
        "bad-decision-log-destination.yaml": ["/decisionLog/destination"],
        "bad-monitoring-labels.yaml": ["/monitoring/podMonitor/labels/release", "string"],
    }
    CHART_CHECKS = {
        "bad-plaintext-beyond-pod.yaml": ["exposeBeyondPod", "tls"],
        "bad-both-data.yaml": ["data.inline", "data.configMap.name"],
        "bad-database-and-data.yaml": ["secrets.existingSecret", "data.configMap.name"],
        "bad-nats-and-database.yaml": ["nats.url", "leave secrets.existingSecret empty"],
        "bad-nats-and-data.yaml": ["nats.url", "leave data.inline and data.configMap.name empty"],
        "bad-tenants-without-nats.yaml": ["tenants", "needs nats.url"],
        "bad-relay-without-nats.yaml": ["relay.enabled", "needs nats.url"],
        "bad-relay-without-database.yaml": ["relay.enabled", "needs relay.database.existingSecret"],
        "bad-relay-stream-max-age.yaml": ["relay.streamMaxAge (90m)", "twice relay.snapshotInterval (1h)"],
        "bad-authzen-beyond-pod.yaml": ["authzen.enabled with exposeBeyondPod", "allowPlaintextBeyondPod"],
        "bad-authzen-port.yaml": ["authzen.port and metrics.port are both 9090"],
        "bad-probe-port.yaml": ["metrics.port and port are both 50051", "probes.enabled"],
        "bad-decision-log-etc.yaml": ["decisionLog.destination /etc/permd/decisions.jsonl", "/var/log/permd"],
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
    version: 0.2.0
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
    NETWORK_POLICY = """\
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata:
  name: {{ .Release.Name }}-storefront
  namespace: {{ .Release.Namespace }}
spec:
  podSelector:
    matchLabels: {app: storefront}
  policyTypes: [Ingress]
  ingress:
    - ports: [{port: 8080, protocol: TCP}]
    {{- with include "permd.networkPolicyIngress" (dict "root" . "values" .Values.permd) }}
    {{- . | nindent 4 }}
    {{- end }}
"""

    # helm/permd/README.md's PodMonitor for the app's own pods.
    POD_MONITOR = """\
apiVersion: monitoring.coreos.com/v1
kind: PodMonitor
metadata:
  name: {{ .Release.Name }}-storefront-permd
  namespace: {{ .Release.Namespace }}
spec:
  selector:
    matchLabels: {app: storefront}
  podMetricsEndpoints:
    - port: {{ .Values.permd.metrics.portName }}
      path: {{ .Values.permd.metrics.path }}
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
        (root / "templates" / "networkpolicy.yaml").write_text(self.NETWORK_POLICY)
        (root / "templates" / "podmonitor.yaml").write_text(self.POD_MONITOR)
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
            [("ConfigMap", "shop-permd-data"), ("Deployment", "shop-storefront"),
             ("NetworkPolicy", "shop-storefront"), ("PodMonitor", "shop-storefront-permd")],
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
        self.assertEqual(env_of(c)["PERMD_LISTEN"], "127.0.0.1:50051")
        self.assertEqual(c["readinessProbe"]["grpc"], {"port": 9090, "service": "permd.v1.Authorizer"})
        # The README's PodMonitor scrapes the sidecar's metrics port.
        (monitor,) = by_kind(docs, "PodMonitor")
        self.assertEqual(monitor["spec"]["podMetricsEndpoints"], [{"port": "metrics", "path": "/metrics"}])
        self.assertIn("metrics", [p["name"] for p in c["ports"]])
        self.assertEqual(monitor["spec"]["selector"], {"matchLabels": dep["spec"]["selector"]["matchLabels"]})
        # permd.networkPolicyIngress: the metrics port, not the Authorizer.
        (np,) = by_kind(docs, "NetworkPolicy")
        self.assertEqual(np["spec"]["ingress"], [
            {"ports": [{"port": 8080, "protocol": "TCP"}]},
            {"ports": [{"port": 9090, "protocol": "TCP"}]},
        ])

    def test_network_policy_rules_for_the_parent(self):
        # The same rules as the example app's policy, whatever the values.
        cases = [
            ({"metrics": {"enabled": False}}, []),
            ({"networkPolicy": {"metricsFrom": [{"namespaceSelector": {"matchLabels": {"team": "obs"}}}]}},
             [{"ports": [{"port": 9090, "protocol": "TCP"}],
               "from": [{"namespaceSelector": {"matchLabels": {"team": "obs"}}}]}]),
            ({"exposeBeyondPod": True, "allowPlaintextBeyondPod": True, "authzen": {"enabled": True},
              "networkPolicy": {"grpcFrom": [{"podSelector": {"matchLabels": {"app": "billing"}}}]}},
             [{"ports": [{"port": 9090, "protocol": "TCP"}]},
              {"ports": [{"port": 50051, "protocol": "TCP"}, {"port": 8181, "protocol": "TCP"}],
               "from": [{"podSelector": {"matchLabels": {"app": "billing"}}}]}]),
        ]
        with ParentChart() as parent:
            for permd_values, rules in cases:
                with self.subTest(values=permd_values):
                    docs = objects(render({"permd": permd_values}, chart=parent))
                    validate_all(self, docs, [FLOOR, NEWEST])
                    (np,) = by_kind(docs, "NetworkPolicy")
                    self.assertEqual(np["spec"]["ingress"], [{"ports": [{"port": 8080, "protocol": "TCP"}]}, *rules])
                    # The example app's own policy, with the same values, has the same rules.
                    example = by_kind(objects(render({**permd_values, "exampleApp": {"enabled": True}})),
                                      "NetworkPolicy")[0]
                    self.assertEqual(example["spec"]["ingress"][1:], rules)

    def test_sidecar_in_nats_mode_in_the_parent_pod(self):
        # permd.volumes gives the parent's pod the NATS credentials volume
        # the sidecar mounts; no ConfigMap, no relay (the parent's values
        # do not enable it).
        values = {"permd": {"data": {"inline": ""},
                            "nats": {"url": "nats://nats.nats:4222",
                                     "credentials": {"secretName": "storefront-nats"}},
                            "tenants": ["storefront"]}}
        with ParentChart() as parent:
            docs = objects(render(values, chart=parent))
        validate_all(self, docs, [FLOOR, NEWEST])
        self.assertEqual([(d["kind"], d["metadata"]["name"]) for d in docs],
                         [("Deployment", "shop-storefront"), ("NetworkPolicy", "shop-storefront"),
                          ("PodMonitor", "shop-storefront-permd")])
        spec = pod_spec(docs[0])
        env = env_of(permd_container(spec))
        self.assertEqual(env["PERMD_NATS_URL"], "nats://nats.nats:4222")
        self.assertEqual(env["PERMD_NATS_CREDS"], NATS_CREDS_PATH)
        self.assertEqual(env["PERMD_TENANTS"], "storefront")
        self.assertNotIn("PERMD_DATA", env)
        self.assertEqual(spec["volumes"], [{
            "name": "permd-nats-creds",
            "secret": {"secretName": "storefront-nats", "defaultMode": 0o444,
                       "items": [{"key": "nats.creds", "path": "nats.creds"}]},
        }])


def permd_bin() -> str | None:
    return os.environ.get("PERMD_BIN") or None


def help_env(binary: str, command: str) -> dict[str, str | None]:
    """PERMD_* variable → its default (None without one), from `permd <command> --help`."""
    out = subprocess.run([binary, command, "--help"], capture_output=True, text=True,
                         timeout=60, check=True).stdout
    # clap: "[env: PERMD_MAX_BATCH=]" then, when there is one, "[default: 100000]";
    # "[env: PERMD_ADMIN_TOKEN]" (no "=") for a setting whose value it hides.
    found = {}
    for m in re.finditer(r"\[env: (PERMD_\w+)(?:=[^\]]*)?\](?:\s*\[default: ([^\]]*)\])?", out):
        found[m.group(1)] = m.group(2)
    return found


@unittest.skipUnless(permd_bin(), "PERMD_BIN not set: no permd binary to check the chart against")
class AgainstTheServer(unittest.TestCase):
    """The chart and the permd binary agree."""

    @classmethod
    def setUpClass(cls):
        cls.server_env = help_env(permd_bin(), "serve")
        assert cls.server_env, "no [env: PERMD_...] in `permd serve --help`"
        cls.relay_env = help_env(permd_bin(), "relay")
        assert "PERMD_SNAPSHOT_EVERY" in cls.relay_env, f"`permd relay --help`: {cls.relay_env}"

    def sidecar_env_names(self, values: dict[str, Any]) -> set[str]:
        names = set()
        for dep in sidecar_deployments(objects(render(values))):
            names |= set(env_of(permd_container(pod_spec(dep))))
        return names

    def relay_env_names(self, values: dict[str, Any]) -> set[str]:
        names = set()
        for dep in relay_deployments(objects(render(values))):
            names |= set(env_of(relay_container(dep)))
        return names

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
        for env, key in [*CHART_DEFAULTS.items(), *DATABASE_ENV.items(), *NATS_ENV.items()]:
            if key is None:
                continue
            with self.subTest(env=env, key=key):
                self.assertEqual(str(lookup(defaults, key)), self.server_env[env])

    def test_relay_defaults_are_the_relays(self):
        defaults = yaml.safe_load((CHART / "values.yaml").read_text())
        for env, key in RELAY_DEFAULTS.items():
            self.assertIn(env, self.relay_env)
            if key is None:
                continue
            with self.subTest(env=env, key=key):
                self.assertEqual(str(lookup(defaults, key)), self.relay_env[env])
        # The metrics port is the relay's default one (its host is loopback
        # there: the pod listens on 0.0.0.0 for Prometheus and the probes).
        self.assertEqual(self.relay_env["PERMD_METRICS_LISTEN"].rsplit(":", 1)[1],
                         str(defaults["relay"]["metricsPort"]))

    def test_chart_sets_every_relay_setting(self):
        names = set()
        for name in good_values_files():
            names |= self.relay_env_names(load_values(name))
        self.assertTrue(names, "no good values file renders the relay")
        missing = set(self.relay_env) - names - set(RELAY_NOT_SET_BY_CHART)
        self.assertEqual(missing, set(),
                         "`permd relay` reads these but the chart never sets them: "
                         "add them to helm/permd (values.yaml, schema, permd.relayEnv)")
        unknown = {n for n in names if n.startswith("PERMD_")} - set(self.relay_env)
        self.assertEqual(unknown, set(), "misspelt or removed PERMD_* variables for the relay")

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
        c = permd_container(pod_spec(sidecar_deployments(docs)[0]))
        env = {k: v for k, v in env_of(c).items() if isinstance(v, str)}
        (cm,) = by_kind(docs, "ConfigMap")
        with tempfile.TemporaryDirectory() as tmp:
            data = Path(tmp) / "data.yaml"
            data.write_text(cm["data"]["data.yaml"])
            self.assertEqual(env["PERMD_DATA"], "/etc/permd/data/data.yaml")
            env["PERMD_DATA"] = str(data)
            log = self.serve_until_serving(c["args"], env)
            self.assertIn(str(data), log)

    def test_serve_starts_in_nats_mode(self):
        # NATS mode's rendered env, NATS unreachable (a closed loopback
        # port) and the credentials file moved to a temporary one: permd
        # serves (NOT_SERVING until a snapshot arrives, retrying NATS in the
        # background), so no setting was refused.
        docs = objects(render(load_values("nats.yaml")))
        c = permd_container(pod_spec(sidecar_deployments(docs)[0]))
        env = {k: v for k, v in env_of(c).items() if isinstance(v, str)}
        with tempfile.TemporaryDirectory() as tmp:
            creds = Path(tmp) / "nats.creds"
            creds.write_text("not a real credentials file\n")
            self.assertEqual(env["PERMD_NATS_CREDS"], NATS_CREDS_PATH)
            env["PERMD_NATS_CREDS"] = str(creds)
            env["PERMD_NATS_URL"] = f"nats://127.0.0.1:{closed_port()}"
            log = self.serve_until_serving(c["args"], env)
            self.assertIn(f"NATS {env['PERMD_NATS_URL']}", log)

    def test_probes_answer_on_the_probe_port(self):
        # What the kubelet does with the rendered probes: native gRPC health
        # checks, plaintext, on the probe and metrics port, with the
        # Authorizer on loopback (and TLS on it: the probe port stays
        # plaintext). Prometheus' GET /metrics on the same port. An API token
        # guards the Authorizer, not health.
        try:
            import grpc
            from grpc_health.v1 import health_pb2, health_pb2_grpc
        except ImportError:
            # CI installs tests/helm/requirements.txt: there this is a failure.
            if os.environ.get("CI"):
                raise
            self.skipTest("grpcio / grpcio-health-checking not installed (pip install -r tests/helm/requirements.txt)")

        docs = objects(render(load_values("default.yaml")))
        (dep,) = sidecar_deployments(docs)
        c = permd_container(pod_spec(dep))
        scrape_path = dep["spec"]["template"]["metadata"]["annotations"]["prometheus.io/path"]
        env = {k: v for k, v in env_of(c).items() if isinstance(v, str)}
        self.assertTrue(env["PERMD_LISTEN"].startswith("127.0.0.1:"))
        env.update(PERMD_LISTEN="127.0.0.1:0", PERMD_METRICS_LISTEN="127.0.0.1:0",
                   PERMD_API_TOKEN=self.SECRET["api-token"])
        base = {k: v for k, v in os.environ.items() if not k.startswith("PERMD_")}
        proc = subprocess.Popen([permd_bin(), *c["args"]], env={**base, **env},
                                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                stderr=subprocess.PIPE, text=True)
        try:
            lines = Lines(proc)
            probe_addr = json.loads(lines.wait_for("grpc.health.v1 on the same port", timeout=60))["fields"]["metrics"]
            lines.wait_for("permd serving", timeout=60)
            with grpc.insecure_channel(probe_addr) as channel:
                stub = health_pb2_grpc.HealthStub(channel)
                for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
                    service = c[probe]["grpc"].get("service", "")
                    with self.subTest(probe=probe, service=service):
                        answer = stub.Check(health_pb2.HealthCheckRequest(service=service), timeout=10)
                        self.assertEqual(answer.status, health_pb2.HealthCheckResponse.SERVING)
            with urllib.request.urlopen(f"http://{probe_addr}{scrape_path}", timeout=10) as response:
                self.assertEqual(response.status, 200)
                self.assertIn("permd_build_info", response.read().decode())
            time.sleep(0.5)
            proc.send_signal(signal.SIGTERM)
            self.assertEqual(proc.wait(timeout=30), 0)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
            proc.stderr.close()

    def serve_until_serving(self, args: list[str], env: dict[str, str]) -> str:
        """Runs `permd <args>` with env on loopback ephemeral ports until it
        logs "permd serving" and accepts a connection, then SIGTERMs it:
        returns that log line."""
        env = {**env, "PERMD_LISTEN": "127.0.0.1:0"}
        for name in ("PERMD_METRICS_LISTEN", "PERMD_AUTHZEN_LISTEN"):
            if name in env:
                env[name] = "127.0.0.1:0"
        base = {k: v for k, v in os.environ.items() if not k.startswith("PERMD_")}
        proc = subprocess.Popen([permd_bin(), *args], env={**base, **env},
                                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                stderr=subprocess.PIPE, text=True)
        try:
            log = Lines(proc).wait_for("permd serving", timeout=60)
            self.assertIn("127.0.0.1:", log)
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
            return log
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
            proc.stderr.close()

    def test_relay_starts_with_the_rendered_environment(self):
        # The relay's env as rendered (nats.yaml), except: PostgreSQL and
        # NATS unreachable (closed loopback ports), the credentials file moved
        # to a temporary one and metrics on a loopback ephemeral port. The
        # relay then accepts every setting, stands by retrying, and answers
        # the GET its probes make; SIGTERM stops it with 0.
        docs = objects(render(load_values("nats.yaml")))
        r = relay_container(relay_deployments(docs)[0])
        env = {}
        for k, v in env_of(r).items():
            if isinstance(v, str):
                env[k] = v
            else:
                self.assertEqual(k, "PERMD_DATABASE_URL")
                env[k] = f"postgres://permd:s3cret@127.0.0.1:{closed_port()}/permd"
        probe = r["livenessProbe"]["httpGet"]
        self.assertEqual(r["readinessProbe"]["httpGet"], probe)
        (port,) = r["ports"]
        self.assertEqual(probe["port"], port["name"])
        self.assertEqual(env["PERMD_METRICS_LISTEN"], f"0.0.0.0:{port['containerPort']}")
        with tempfile.TemporaryDirectory() as tmp:
            creds = Path(tmp) / "nats.creds"
            creds.write_text("not a real credentials file\n")
            self.assertEqual(env["PERMD_NATS_CREDS"], NATS_CREDS_PATH)
            env["PERMD_NATS_CREDS"] = str(creds)
            env["PERMD_NATS_URL"] = f"nats://127.0.0.1:{closed_port()}"
            env["PERMD_METRICS_LISTEN"] = "127.0.0.1:0"
            base = {k: v for k, v in os.environ.items() if not k.startswith("PERMD_")}
            proc = subprocess.Popen([permd_bin(), *r["args"]], env={**base, **env},
                                    stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                    stderr=subprocess.PIPE, text=True)
            try:
                lines = Lines(proc)
                metrics = json.loads(lines.wait_for("metrics on /metrics", timeout=60))
                started = json.loads(lines.wait_for("permd relay starting", timeout=60))
                # The prefix names the stream and the bucket.
                self.assertEqual(started["fields"]["stream"], "SHOP_AUTHZ_CHANGES")
                self.assertEqual(started["fields"]["bucket"], "shop-authz-snapshots")
                self.assertIn("***", started["fields"]["database"], "the password is not logged")
                url = f"http://{metrics['fields']['metrics']}{probe['path']}"
                with urllib.request.urlopen(url, timeout=10) as response:
                    self.assertEqual(response.status, 200)
                    response.read()
                time.sleep(0.5)
                proc.send_signal(signal.SIGTERM)
                self.assertEqual(proc.wait(timeout=30), 0, "SIGTERM stops the relay with 0")
            finally:
                if proc.poll() is None:
                    proc.kill()
                    proc.wait()
                proc.stderr.close()

    # What the Secret would hold, for --print-config (which connects to nothing).
    SECRET = {
        "database-url": "postgres://permd:s3cret@postgres.example:5432/permd",
        "admin-token": "an-admin-token-of-32-characters!",
        "api-token": "an-api-token-of-32-characters!!!",
    }
    API_TOKEN = "another-api-token-32-characters!"
    NATS_TOKEN = "a-nats-token"

    def test_effective_settings_are_the_values(self):
        # `permd serve --print-config` with each rendered sidecar's env (the
        # Secrets' keys filled in): what permd would run with is what the
        # values say. (It also refuses conflicting sources: --nats-url with
        # --database-url or --data, --tenants without --nats-url.)
        for name in good_values_files():
            values = load_values(name)
            deps = sidecar_deployments(objects(render(values)))
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
                        ref = val["secretKeyRef"]
                        if k == "PERMD_NATS_TOKEN":
                            self.assertEqual((ref["name"], ref["key"]),
                                             (v["nats"]["token"]["secretName"], v["nats"]["token"]["key"]))
                            env[k] = self.NATS_TOKEN
                        elif k == "PERMD_API_TOKEN" and v["apiToken"]["secretName"]:
                            self.assertEqual((ref["name"], ref["key"]),
                                             (v["apiToken"]["secretName"], v["apiToken"]["key"]))
                            env[k] = self.API_TOKEN
                        else:
                            self.assertEqual(ref["name"], v["secrets"]["existingSecret"])
                            env[k] = self.SECRET[ref["key"]]
                base = {k: val for k, val in os.environ.items() if not k.startswith("PERMD_")}
                run = subprocess.run([permd_bin(), *c["args"], "--print-config"],
                                     env={**base, **env}, capture_output=True, text=True, timeout=60)
                self.assertEqual(run.returncode, 0, run.stderr)
                effective = yaml.safe_load(run.stdout)
                # permd writes YAML 1.2, where `admin: off` is a string; PyYAML
                # reads YAML 1.1, where it is false: take those as text.
                text = yaml.load(run.stdout, Loader=yaml.BaseLoader)
                for key in ("admin", "decision_log", "decision_log_sample", "api_token"):
                    if key in text:
                        effective[key] = text[key]

                pod_host = v["listenHost"] if v["listenHost"] and not v["listenHost"].startswith("127.") else "0.0.0.0"
                host = pod_host if v["exposeBeyondPod"] else "127.0.0.1"
                probe_listener = v["metrics"]["enabled"] or v["probes"]["enabled"]
                data_key = "data.yaml" if v["data"]["inline"] else v["data"]["configMap"]["key"]
                has_data = bool(v["data"]["inline"] or v["data"]["configMap"]["name"])
                tls = v["tls"]["enabled"]
                database = bool(v["secrets"]["existingSecret"])
                nats = bool(v["nats"]["url"])
                if database:
                    max_staleness = v["database"]["maxStaleness"]
                elif nats:
                    max_staleness = v["nats"]["maxStaleness"]
                else:
                    max_staleness = self.server_env["PERMD_MAX_STALENESS"]
                expected = {
                    "listen": f"{host}:{v['port']}",
                    "data": f"/etc/permd/data/{data_key}" if has_data else None,
                    "max_batch": v["maxBatch"],
                    "max_message_bytes": v["maxMessageBytes"],
                    "max_concurrent_requests": v["maxConcurrentRequests"],
                    "max_concurrent_streams": v["maxConcurrentStreams"],
                    "metrics_listen": f"{pod_host}:{v['metrics']['port']}" if probe_listener else None,
                    "tls_cert": "/etc/permd/tls/tls.crt" if tls else None,
                    "tls_key": "/etc/permd/tls/tls.key" if tls else None,
                    "tls_client_ca": "/etc/permd/tls/ca.crt" if tls and v["tls"]["clientCa"] else None,
                    "log_format": v["logFormat"],
                    "database_url": "postgres://permd:***@postgres.example:5432/permd" if database else None,
                    "nats_url": v["nats"]["url"] if nats else None,
                    "nats_prefix": v["nats"]["prefix"] if nats else self.server_env["PERMD_NATS_PREFIX"],
                    "tenants": (v["tenants"] or None) if nats else None,
                    "max_staleness": span(max_staleness),
                    "changelog_retention": span(v["database"]["changelogRetention"] if database
                                                else self.server_env["PERMD_CHANGELOG_RETENTION"]),
                    "admin": "enabled (token set)" if database else "disabled",
                }
                # Shown by newer builds only: checked when printed.
                if "nats_creds" in effective:
                    expected["nats_creds"] = (NATS_CREDS_PATH if nats and v["nats"]["credentials"]["secretName"]
                                              else None)
                if "api_token" in effective:
                    expected["api_token"] = ("required (token set)" if database or v["apiToken"]["secretName"]
                                             else "none")
                if "decision_log" in effective:
                    destination = v["decisionLog"]["destination"]
                    expected["decision_log"] = "off" if destination is False else destination
                    expected["decision_log_sample"] = v["decisionLog"]["sample"]
                    expected["authzen_listen"] = (f"{host}:{v['authzen']['port']}" if v["authzen"]["enabled"]
                                                  else None)
                    expected["authzen_tenant"] = (v["authzen"]["tenant"] or None) if v["authzen"]["enabled"] else None
                self.assertEqual({k: effective.get(k, "<absent>") for k in expected}, expected)


def closed_port() -> int:
    """A loopback port nothing listens on (bound, then closed), so a client
    gets "connection refused" at once."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Lines:
    """Reads a process's stderr line by line in a thread, so lines that
    arrive together are never stranded in a buffer that select() cannot see;
    wait_for() may be called again for a later line."""

    def __init__(self, proc: subprocess.Popen):
        self.proc = proc
        self.queue: queue.Queue[str | None] = queue.Queue()
        self.seen: list[str] = []
        self.ended = False
        threading.Thread(target=self.pump, daemon=True).start()

    def pump(self) -> None:
        for line in self.proc.stderr:
            self.queue.put(line)
        self.queue.put(None)

    def wait_for(self, needle: str, timeout: float) -> str:
        """The next line containing needle."""
        deadline = time.monotonic() + timeout
        while not self.ended and (left := deadline - time.monotonic()) > 0:
            try:
                line = self.queue.get(timeout=left)
            except queue.Empty:
                break
            if line is None:
                self.ended = True
                break
            self.seen.append(line)
            if needle in line:
                return line
        raise AssertionError(f"no {needle!r} within {timeout}s (exit {self.proc.poll()}):\n{''.join(self.seen)}")


if __name__ == "__main__":
    print(f"helm-python-sdk {helm.__version__} (Helm {helm.helm_sdk_version()}), "
          f"kubernetes-validate {kubernetes_validate.__version__}, "
          f"Kubernetes schemas {FLOOR}..{NEWEST}", file=sys.stderr)
    unittest.main()
