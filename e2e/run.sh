#!/usr/bin/env bash
# End-to-end tests on a kind cluster: build both images, load them into kind, install the chart
# with them, serve generated ONNX models from inside the cluster, then run pytest e2e/ (canary
# promotion and rollback against the real API server, scheduler, kubelet and network).
#
#   e2e/run.sh                 # create the cluster, run everything, delete the cluster
#   E2E_KEEP_CLUSTER=1 e2e/run.sh -k promote    # keep the cluster; extra args go to pytest
#
# Needs docker, kind, kubectl, helm and a Python with the operator extra, onnx and pytest
# (pip install -e ".[operator]" onnx numpy pytest pytest-timeout).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

CLUSTER="${E2E_CLUSTER:-modeldeploy-e2e}"
TAG="${E2E_TAG:-e2e}"
OPERATOR_IMAGE="modeldeploy-operator:${TAG}"
MODELSERVER_IMAGE="modelserver:${TAG}"
OPERATOR_NAMESPACE="${E2E_OPERATOR_NAMESPACE:-modeldeploy-system}"
MODELS_NAMESPACE="e2e-models"
KEEP_CLUSTER="${E2E_KEEP_CLUSTER:-0}"
PYTHON="${PYTHON:-python3}"
WORK="$(mktemp -d "${TMPDIR:-/tmp}/modeldeploy-e2e.XXXXXX")"

log() { printf '\n=== %s\n' "$*"; }

for tool in docker kind kubectl helm "$PYTHON"; do
  command -v "$tool" >/dev/null 2>&1 || { echo "e2e: '$tool' is required" >&2; exit 2; }
done

diagnostics() {
  log "diagnostics"
  kubectl get nodes -o wide || true
  kubectl get modeldeployments.serving.modeldeploy.dev -A -o yaml || true
  kubectl get deployments,pods,services,hpa -A -l app.kubernetes.io/managed-by=modeldeploy -o wide || true
  kubectl get events -A --sort-by=.lastTimestamp | tail -n 80 || true
  kubectl -n "$OPERATOR_NAMESPACE" logs -l app.kubernetes.io/instance=modeldeploy --tail=300 --prefix || true
}

cleanup() {
  local rc=$?
  if [[ $rc -ne 0 ]]; then
    diagnostics
  fi
  if [[ "$KEEP_CLUSTER" != "1" ]]; then
    kind delete cluster --name "$CLUSTER" || true
  fi
  rm -rf "$WORK"
  exit "$rc"
}
trap cleanup EXIT

log "kind cluster $CLUSTER"
if ! kind get clusters 2>/dev/null | grep -qx "$CLUSTER"; then
  kind create cluster --name "$CLUSTER" --config e2e/kind-config.yaml --wait 180s
fi
kubectl config use-context "kind-$CLUSTER"

log "images"
docker build -f operator/Dockerfile -t "$OPERATOR_IMAGE" .
docker build -f runtime-image/Dockerfile -t "$MODELSERVER_IMAGE" .
kind load docker-image --name "$CLUSTER" "$OPERATOR_IMAGE" "$MODELSERVER_IMAGE"

log "operator (helm chart)"
helm upgrade --install modeldeploy charts/modeldeploy \
  --namespace "$OPERATOR_NAMESPACE" --create-namespace \
  --set image.repository=modeldeploy-operator \
  --set image.tag="$TAG" \
  --set image.pullPolicy=Never \
  --set runtimeImages.modelserver="$MODELSERVER_IMAGE" \
  --set runtimeImages.modelserverGpu="$MODELSERVER_IMAGE" \
  --set operator.resyncSeconds=30 \
  --set operator.verbose=true \
  --wait --timeout 5m
kubectl -n "$OPERATOR_NAMESPACE" rollout status deployment/modeldeploy --timeout=180s

log "model store"
"$PYTHON" e2e/models.py --out "$WORK/models" \
  --base-url "http://model-store.${MODELS_NAMESPACE}.svc:8080" > "$WORK/models.json"
cat "$WORK/models.json"
kubectl create namespace "$MODELS_NAMESPACE" --dry-run=client -o yaml | kubectl apply -f -
kubectl -n "$MODELS_NAMESPACE" create configmap model-store --from-file="$WORK/models" \
  --dry-run=client -o yaml | kubectl apply -f -
sed "s|@MODELSERVER_IMAGE@|${MODELSERVER_IMAGE}|" e2e/model-store.yaml | kubectl -n "$MODELS_NAMESPACE" apply -f -
kubectl -n "$MODELS_NAMESPACE" rollout status deployment/model-store --timeout=120s

log "pytest e2e/"
E2E_MODELS="$WORK/models.json" E2E_OPERATOR_NAMESPACE="$OPERATOR_NAMESPACE" \
  "$PYTHON" -m pytest e2e -v -p no:cacheprovider "$@"
