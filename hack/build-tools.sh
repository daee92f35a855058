#!/usr/bin/env bash
# Build the Go tooling the tests and the demo run (kube-apiserver, kubectl, etcd, helm) from the
# pinned modules in hack/{kube,etcd,helm}, into .cache/bin/<tool>-<version>/. Built once per
# machine: a binary already in its versioned cache dir is reused. `make cluster` also builds the
# node's: kubelet, kube-controller-manager, kube-scheduler, kube-proxy (hack/node) and containerd 2
# with its runc shim and ctr (hack/containerd).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
# shellcheck source=versions.env
source "$root/hack/versions.env"
cache="$root/.cache/bin"
export GOFLAGS="${GOFLAGS:-} -trimpath -mod=readonly"
export CGO_ENABLED=0
# Two cores: let go use both, but don't let the linker run several at once and thrash memory.
jobs="${KUBESCIM_BUILD_JOBS:-2}"

build() { # build <dir> <outdir> <package> <binary> [ldflags] [tags]
  local dir=$1 out=$2 pkg=$3 bin=$4 ldflags=${5:-} tags=${6:-}
  if [[ -x "$out/$bin" ]]; then return 0; fi
  mkdir -p "$out"
  echo "building $bin into ${out#"$root"/} ..." >&2
  local start=$SECONDS
  (cd "$root/hack/$dir" && go build -p "$jobs" -tags "$tags" -ldflags "-s -w $ldflags" -o "$out/$bin.tmp" "$pkg")
  mv "$out/$bin.tmp" "$out/$bin"
  echo "built $bin in $((SECONDS - start))s" >&2
}

kube_minor=${KUBERNETES_VERSION#v1.}; kube_minor=${kube_minor%%.*}
kube_ldflags=""
for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
  kube_ldflags+=" -X $pkg.gitVersion=$KUBERNETES_VERSION -X $pkg.gitMajor=1 -X $pkg.gitMinor=$kube_minor"
  kube_ldflags+=" -X $pkg.gitTreeState=clean -X $pkg.buildDate=1970-01-01T00:00:00Z"
done

want=${*:-kube-apiserver kubectl etcd helm}
for tool in $want; do
  case $tool in
    kube-apiserver|kubectl)
      build kube "$cache/kubernetes-$KUBERNETES_VERSION" "k8s.io/kubernetes/cmd/$tool" "$tool" "$kube_ldflags" ;;
    kubelet|kube-controller-manager|kube-scheduler|kube-proxy)
      build node "$cache/kubernetes-$KUBERNETES_VERSION" "k8s.io/kubernetes/cmd/$tool" "$tool" "$kube_ldflags" ;;
    containerd|containerd-shim-runc-v2|ctr)
      build containerd "$cache/containerd-$CONTAINERD_VERSION" "github.com/containerd/containerd/v2/cmd/$tool" "$tool" \
        "-X github.com/containerd/containerd/v2/version.Version=$CONTAINERD_VERSION" "no_btrfs no_devmapper no_zfs" ;;
    etcd)
      build etcd "$cache/etcd-$ETCD_VERSION" go.etcd.io/etcd/server/v3 etcd \
        "-X go.etcd.io/etcd/api/v3/version.GitSHA=${ETCD_VERSION}" ;;
    helm)
      build helm "$cache/helm-$HELM_VERSION" helm.sh/helm/v3/cmd/helm helm \
        "-X helm.sh/helm/v3/internal/version.version=$HELM_VERSION -X helm.sh/helm/v3/internal/version.gitTreeState=clean" ;;
    *) echo "unknown tool $tool" >&2; exit 2 ;;
  esac
done
