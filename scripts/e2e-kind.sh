#!/usr/bin/env bash
# make e2e-kind: the documented path for people with Docker and kind (CI machines have neither
# and use the envtest-style control plane of test/e2e instead). Builds both images, loads them
# into a kind cluster, installs the chart, runs a Kafka-less smoke check: a pod created in a
# labelled namespace comes back with the sidecar injected.
set -euo pipefail
for tool in docker kind kubectl; do
  command -v "$tool" >/dev/null || { echo "e2e-kind: $tool is required (this target is for machines with Docker)" >&2; exit 2; }
done
here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
helm="$("$here/scripts/tools/install-helm.sh")"
cluster="${KIND_CLUSTER:-idempo}"
tag="e2e-$(git -C "$here" rev-parse --short HEAD)"

docker build --target sidecar -t "idempo-sidecar:$tag" "$here"
docker build --target operator -t "idempo-operator:$tag" "$here"
kind get clusters | grep -qx "$cluster" || kind create cluster --name "$cluster"
kind load docker-image --name "$cluster" "idempo-sidecar:$tag" "idempo-operator:$tag"

kubectl apply -f "$here/crds/"
"$helm" upgrade --install idempo "$here/charts/idempo" -n idempo-system --create-namespace \
  --set image.repository=idempo-operator --set image.tag="$tag" --wait --timeout 3m

kubectl create namespace idempo-smoke --dry-run=client -o yaml | kubectl apply -f -
kubectl label namespace idempo-smoke idempo.dev/injection=enabled --overwrite
kubectl apply -n idempo-smoke -f - <<YAML
apiVersion: idempo.dev/v1alpha1
kind: IdempotentProducerPolicy
metadata: { name: smoke }
spec:
  selector: { matchLabels: { app: smoke } }
  kafka: { bootstrapServers: ["kafka.invalid:9092"] }
  injection: { image: "idempo-sidecar:$tag" }
YAML
# Not `kubectl wait`: it fails at once ("status.conditions accessor error") while the policy has
# no status yet. Poll until the condition is True or the deadline passes.
wait_condition() { # NAMESPACE OBJECT CONDITION SECONDS
  local deadline=$((SECONDS + $4))
  until [ "$(kubectl get -n "$1" "$2" -o jsonpath="{.status.conditions[?(@.type==\"$3\")].status}" 2>/dev/null)" = True ]; do
    [ "$SECONDS" -lt "$deadline" ] || { echo "e2e-kind: $2 not $3 within $4 s" >&2; return 1; }
    sleep 1
  done
}
wait_condition idempo-smoke ipp/smoke Ready 60
kubectl run -n idempo-smoke smoke --image=busybox --labels=app=smoke --restart=Never \
  --env=KAFKA_BOOTSTRAP_SERVERS=kafka.invalid:9092 -- sleep 3600 >/dev/null
injected="$(kubectl get pod -n idempo-smoke smoke -o jsonpath='{.metadata.annotations.idempo\.dev/injected}')"
[ "$injected" = "smoke" ] || { echo "e2e-kind: pod was not injected" >&2; exit 1; }
echo "e2e-kind: pod injected by policy '$injected' (cluster $cluster; delete with: kind delete cluster --name $cluster)"
