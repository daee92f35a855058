#!/usr/bin/env bash
# `make e2e-kind`: on a host with Docker and kind, deploy kubescim with Helm into a kind cluster and run
# the test suite against that cluster. It cannot run where there is no Docker engine (our CI): it is
# kept correct by reading, and the tests it runs are the same ones CI runs against the local stack.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cluster=${KIND_CLUSTER:-kubescim-e2e}
image=${IMAGE:-kubescim/kubescim:e2e}
namespace=${NAMESPACE:-kubescim}
helm=$(bash "$root/hack/build-tools.sh" helm >/dev/null && ls "$root"/.cache/bin/helm-*/helm | head -1)

for tool in docker kind; do
  command -v "$tool" >/dev/null || { echo "e2e-kind needs $tool on PATH" >&2; exit 2; }
done

kind get clusters | grep -qx "$cluster" || kind create cluster --name "$cluster" --wait 120s
kubeconfig=$(mktemp)
trap 'rm -f "$kubeconfig"' EXIT
kind get kubeconfig --name "$cluster" > "$kubeconfig"

docker build -t "$image" "$root"
kind load docker-image "$image" --name "$cluster"

"$helm" upgrade --install kubescim-crds "$root/charts/kubescim-crds" --kubeconfig "$kubeconfig" --wait
"$helm" upgrade --install kubescim "$root/charts/kubescim" --kubeconfig "$kubeconfig" \
  --namespace "$namespace" --create-namespace --wait --timeout 5m \
  --set image.repository="${image%:*}" --set image.tag="${image##*:}" --set image.pullPolicy=Never
kubectl --kubeconfig "$kubeconfig" -n "$namespace" rollout status deploy/kubescim-gateway --timeout 120s
kubectl --kubeconfig "$kubeconfig" -n "$namespace" rollout status deploy/kubescim-operator --timeout 120s

# The deployed gateway answers: rotate a token in-cluster and call it through a port-forward.
token=$(kubectl --kubeconfig "$kubeconfig" -n "$namespace" run kubescim-token --rm -i --restart=Never \
  --image="$image" --image-pull-policy=Never \
  --overrides='{"spec":{"serviceAccountName":"kubescim-token-rotator"}}' \
  -- kubescim token rotate --provider okta 2>/dev/null | head -1)
kubectl --kubeconfig "$kubeconfig" -n "$namespace" port-forward svc/kubescim-gateway 18080:80 >/dev/null &
forward=$!
trap 'kill $forward 2>/dev/null; rm -f "$kubeconfig"' EXIT
sleep 2
curl -fsS -H "Authorization: Bearer $token" "http://127.0.0.1:18080/scim/v2/Users?count=1" >/dev/null
echo "in-cluster gateway answers SCIM"

# The whole suite against the kind cluster (tests make their own namespaces).
KUBESCIM_TEST_CLUSTER=existing KUBECONFIG="$kubeconfig" make -C "$root" test
