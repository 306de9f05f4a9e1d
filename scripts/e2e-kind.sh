#!/usr/bin/env bash
# make e2e-kind: for people with Docker and kind (CI machines have neither; they run the same
# journey on a real node of their own: test/e2e/node.test.ts). Loads the OCI archives `make
# images` built — the same images the node test runs — into a kind cluster (`kind load
# image-archive` hands them to the node's containerd, as cluster-up does), installs the chart
# and runs a Kafka-less smoke check: a pod created in a labelled namespace comes back with the
# sidecar injected.
set -euo pipefail
for tool in kind kubectl; do
  command -v "$tool" >/dev/null || { echo "e2e-kind: $tool is required (this target is for machines with Docker and kind)" >&2; exit 2; }
done
here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
helm="$("$here/scripts/tools/install-helm.sh")"
cluster="${KIND_CLUSTER:-idempo}"
images=("$here/dist/images/idempo-sidecar.oci.tar" "$here/dist/images/idempo-operator.oci.tar")
for a in "${images[@]}"; do [ -f "$a" ] || { echo "e2e-kind: $a missing (make images)" >&2; exit 2; }; done

kind get clusters | grep -qx "$cluster" || kind create cluster --name "$cluster"
for a in "${images[@]}"; do kind load image-archive --name "$cluster" "$a"; done

kubectl apply -f "$here/crds/"
"$helm" upgrade --install idempo "$here/charts/idempo" -n idempo-system --create-namespace \
  --set image.repository=idempo-operator --set image.tag=dev --set image.pullPolicy=Never --wait --timeout 3m

kubectl create namespace idempo-smoke --dry-run=client -o yaml | kubectl apply -f -
kubectl label namespace idempo-smoke idempo.dev/injection=enabled --overwrite
kubectl apply -n idempo-smoke -f - <<YAML
apiVersion: idempo.dev/v1alpha1
kind: IdempotentProducerPolicy
metadata: { name: smoke }
spec:
  selector: { matchLabels: { app: smoke } }
  kafka: { bootstrapServers: ["kafka.invalid:9092"] }
  injection: { image: "idempo-sidecar:dev" }
YAML
# Right after an apply the policy has no conditions yet: poll until Ready or a deadline.
for _ in $(seq 120); do
  [ "$(kubectl get -n idempo-smoke ipp/smoke -o jsonpath='{.status.conditions[?(@.type=="Ready")].status}')" = True ] && break
  sleep 0.5
done
kubectl run -n idempo-smoke smoke --image=idempo-operator:dev --image-pull-policy=Never --labels=app=smoke --restart=Never \
  --env=KAFKA_BOOTSTRAP_SERVERS=kafka.invalid:9092 --command -- /nodejs/bin/node -e 'setTimeout(() => {}, 3600e3)' >/dev/null
injected="$(kubectl get pod -n idempo-smoke smoke -o jsonpath='{.metadata.annotations.idempo\.dev/injected}')"
[ "$injected" = "smoke" ] || { echo "e2e-kind: pod was not injected" >&2; exit 1; }
echo "e2e-kind: pod injected by policy '$injected' (cluster $cluster; delete with: kind delete cluster --name $cluster)"
