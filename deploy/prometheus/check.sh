#!/usr/bin/env bash
# Checks permd's Prometheus alerts and Grafana dashboard:
#   promtool check rules  helm/permd/files/prometheus-rules.yaml  (syntax, PromQL)
#   promtool test rules   deploy/prometheus/tests.yaml            (each alert fires, and does not, as expected)
#   deploy/prometheus/lint.py  (every metric named exists in src/telemetry/; every
#                               alert tested both ways; the dashboard's variables)
# Fails on the first error. Needs promtool and python3 with PyYAML.
set -euo pipefail
cd "$(dirname "$0")/../.."

if ! command -v promtool >/dev/null; then
  cat >&2 <<'MSG'
deploy/prometheus/check.sh: promtool not found.
  Debian/Ubuntu: apt-get update && apt-get install -y prometheus   (provides /usr/bin/promtool)
  elsewhere: promtool is in every Prometheus release, https://prometheus.io/download/
MSG
  exit 127
fi
if ! python3 -c 'import yaml' 2>/dev/null; then
  echo "deploy/prometheus/check.sh: python3 lacks PyYAML: python3 -m pip install -r tests/helm/requirements.txt" >&2
  exit 127
fi

echo "promtool: $(promtool --version 2>&1 | head -n1)"
promtool check rules --lint=all --lint-fatal helm/permd/files/prometheus-rules.yaml
promtool test rules deploy/prometheus/tests.yaml
python3 deploy/prometheus/lint.py
echo "deploy/prometheus/check.sh: OK"
