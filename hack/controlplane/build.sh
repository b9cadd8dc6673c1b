#!/usr/bin/env bash
# Builds the test control plane from Go modules: kube-apiserver, kube-controller-manager,
# kube-scheduler, kubectl (k8s.io/kubernetes), etcd, kwok and helm, into
# .cache/controlplane/<release>/bin/. A binary that is already there is skipped, so a second run
# takes well under a second. Prints the path of the bin directory on its last line.
#
#   hack/controlplane/build.sh            # build what is missing
#   hack/controlplane/build.sh --force    # rebuild everything (Go's build cache still applies)
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
# shellcheck source=versions.env
source "$here/versions.env"
bin="${CONTROLPLANE_BIN:-$repo/.cache/controlplane/$K8S_VERSION/bin}"
force=0
[ "${1:-}" = "--force" ] && force=1
mkdir -p "$bin"

export CGO_ENABLED=0 GOFLAGS="-mod=mod -trimpath -buildvcs=false"
jobs="${GO_BUILD_JOBS:-2}"
start=$SECONDS

need() { [ "$force" = 1 ] || [ ! -x "$bin/$1" ]; }
step() {  # step <name> <command...>: run a build, report its elapsed time and the binary size
  local name="$1" t0=$SECONDS; shift
  if ! need "$name"; then echo "[controlplane] $name: present, skipped"; return 0; fi
  echo "[controlplane] $name: building ..."
  "$@"
  printf '[controlplane] %s: done in %ss (%s), total %ss\n' \
    "$name" "$((SECONDS - t0))" "$(du -h "$bin/$name" | cut -f1)" "$((SECONDS - start))"
}

minor="${K8S_VERSION#v1.}"; minor="${minor%%.*}"
# The release's tag time from the module proxy, so that rebuilt binaries are identical.
build_date="$(go mod download -json "k8s.io/kubernetes@$K8S_VERSION" | python3 -c \
  'import json,sys; print(json.load(open(json.load(sys.stdin)["Info"]))["Time"])' || true)"
build_date="${build_date:-1970-01-01T00:00:00Z}"
ldflags="-s -w"
for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
  ldflags+=" -X $pkg.gitVersion=$K8S_VERSION -X $pkg.gitMajor=1 -X $pkg.gitMinor=$minor"
  # The proxy serves no commit hash; an empty gitCommit beats the "$Format:%H$" placeholder.
  ldflags+=" -X $pkg.gitTreeState=clean -X $pkg.buildDate=$build_date -X $pkg.gitCommit="
done

kube() {  # kube <cmd>: a command of k8s.io/kubernetes, built in our module pinned to the release
  (cd "$here/kubernetes" && go build -p "$jobs" -ldflags "$ldflags" -o "$bin/$1" "k8s.io/kubernetes/cmd/$1")
}
etcd() { (cd "$here/etcd" && go build -p "$jobs" -ldflags "-s -w" -o "$bin/etcd" .); }
gotool() {  # gotool <module/cmd/path@version> [extra ldflags]
  GOFLAGS="-trimpath -buildvcs=false" GOBIN="$bin" go install -p "$jobs" -ldflags "-s -w ${2:-}" "$1"
}

step etcd etcd
step kube-apiserver kube kube-apiserver
step kube-controller-manager kube kube-controller-manager
step kube-scheduler kube kube-scheduler
step kubectl kube kubectl
step kwok gotool "sigs.k8s.io/kwok/cmd/kwok@$KWOK_VERSION"
# kwok fakes nothing until it is given stages; take the same defaults kwokctl uses from the
# kwok module itself (node: initialize + heartbeat with lease; pod: ready, complete, delete).
stages="$bin/../kwok-stages.yaml"
if [ "$force" = 1 ] || [ ! -s "$stages" ]; then
  kwok_dir="$(go mod download -json "sigs.k8s.io/kwok@$KWOK_VERSION" \
    | python3 -c 'import json,sys; print(json.load(sys.stdin)["Dir"])')"
  for f in node/fast/node-initialize node/heartbeat-with-lease/node-heartbeat-with-lease \
           pod/fast/pod-ready pod/fast/pod-complete pod/fast/pod-delete; do
    echo "---"; cat "$kwok_dir/kustomize/stage/$f.yaml"
  done > "$stages.tmp" && mv "$stages.tmp" "$stages"
  echo "[controlplane] kwok stages: written to $stages"
fi
step helm gotool "helm.sh/helm/v4/cmd/helm@$HELM_VERSION" \
  "-X helm.sh/helm/v4/internal/version.version=$HELM_VERSION -X helm.sh/helm/v4/internal/version.gitTreeState=clean"
echo "[controlplane] all binaries present after $((SECONDS - start))s"
echo "$bin"
