#!/bin/bash
# build.sh — build the test cluster's programs from the Go module proxy, into the project.
#
# Output (git-ignored, under the repository's .tools/):
#   .tools/kube/bin/{helm,kube-apiserver,kube-controller-manager,kube-scheduler,kubelet,
#                    kube-proxy,kubectl,etcd,coredns}
#   .tools/bin/helm -> ../kube/bin/helm          (the project's helm for `helm lint` etc.)
#   .tools/kube/images/{pause,hello}.tar          (images FROM scratch, see images/)
# Inputs: the pinned go.mod/go.sum under modules/ beside this script (copied to
#         .tools/kube/src/, so test/kube itself is never written to).
# Order:  helm first (others wait for it), then ONE go build for all Kubernetes binaries
#         and etcd (they share most compiles), then CoreDNS, then the two images.
# Env:    SHOAL_KUBE_TOOLS    build root (default <repo>/.tools/kube)
#         SHOAL_KUBE_KUBECTL  1 = build kubectl v1.37.2 (default 1; 0 = use kubectl from PATH)
#         SHOAL_KUBE_NICE     nice level for the compiles (default 0)
#         SHOAL_KUBE_REBUILD  1 = rebuild even if the binaries exist
#         GOCACHE, GOMODCACHE, GOFLAGS are honoured as usual.
# Targets that exist and were built from the current pins are skipped, so a second run costs
# nothing (~1 s); a changed go.mod/go.sum/main.go or version rebuilds that module's binaries.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
T=${SHOAL_KUBE_TOOLS:-$repo/.tools/kube}
K8S_VERSION=v1.37.2
HELM_VERSION=v4.3.2
NICE="nice -n ${SHOAL_KUBE_NICE:-0}"
export CGO_ENABLED=0
mkdir -p "$T/bin" "$T/src/k8s" "$T/src/helm" "$T/src/coredns" "$T/images"
[ "$T" = "$repo/.tools/kube" ] && mkdir -p "$repo/.tools/bin"

log() { echo "[kube build $(date +%H:%M:%S)] $*"; }
# A stamp per binary (hash of its module's pinned files and version) is kept beside it: when
# a go.mod/go.sum/main.go or the version changes, that module's binaries are rebuilt.
stamp_of() { { echo "$K8S_VERSION $HELM_VERSION"; cat $(find "$here/modules/$1" -type f | sort); } | sha256sum | cut -c1-16; }
missing() { # module names...: prints the names not yet built from the module's current pins
  local mod=$1 f; shift
  local want; want=$(stamp_of "$mod")
  for f in "$@"; do
    if [ "${SHOAL_KUBE_REBUILD:-0}" = 1 ] || [ ! -x "$T/bin/$f" ] || [ "$(cat "$T/bin/.$f.stamp" 2>/dev/null)" != "$want" ]; then echo "$f"; fi
  done
}
stamp() { local mod=$1 f; shift; for f in "$@"; do stamp_of "$mod" > "$T/bin/.$f.stamp"; done; }
sync_mod() { # module-dir: copy the pinned files (and sources) into the build tree
  rm -rf "$T/src/$1" && mkdir -p "$T/src/$1" && cp -r "$here/modules/$1/." "$T/src/$1/"
}

# --- 1. helm v4.3.2 (own module: it would move grpc/otel/x/net under kubernetes) ---
if [ -n "$(missing helm helm)" ]; then
  sync_mod helm
  log "building helm $HELM_VERSION"
  t0=$(date +%s)
  (cd "$T/src/helm" && $NICE go build -mod=readonly -trimpath \
     -ldflags "-s -w -X helm.sh/helm/v4/internal/version.version=$HELM_VERSION" \
     -o "$T/bin/helm" helm.sh/helm/v4/cmd/helm)
  stamp helm helm
  log "helm: $(( $(date +%s) - t0 )) s"
fi
# the project's helm (relative link, so the checkout can move); only for the default build root
if [ "$T" = "$repo/.tools/kube" ]; then
  [ "$(readlink "$repo/.tools/bin/helm" 2>/dev/null)" = ../kube/bin/helm ] || ln -sfn ../kube/bin/helm "$repo/.tools/bin/helm"
fi

# --- 2. Kubernetes v1.37.2 + etcd v3.7.0: one go build, so the shared packages compile once ---
LD="-s -w"
for p in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
  LD="$LD -X $p.gitVersion=$K8S_VERSION -X $p.gitMajor=1 -X $p.gitMinor=37 -X $p.gitTreeState=clean"
  LD="$LD -X $p.gitCommit=0000000000000000000000000000000000000000 -X $p.buildDate=1970-01-01T00:00:00Z"
done
k8s_bins=(kube-apiserver kube-controller-manager kube-scheduler kubelet kube-proxy)
[ "${SHOAL_KUBE_KUBECTL:-1}" = 1 ] && k8s_bins+=(kubectl)
todo=($(missing k8s "${k8s_bins[@]}" etcd))
if [ ${#todo[@]} -gt 0 ]; then
  sync_mod k8s
  pkgs=()
  for b in "${todo[@]}"; do
    # etcd's main package is go.etcd.io/etcd/server/v3: go build names that binary "server"
    if [ "$b" = etcd ]; then pkgs+=(go.etcd.io/etcd/server/v3); else pkgs+=("k8s.io/kubernetes/cmd/$b"); fi
  done
  log "building ${todo[*]} ($K8S_VERSION; etcd v3.7.0) in one go build"
  t0=$(date +%s)
  out=$T/src/k8s/out && rm -rf "$out" && mkdir -p "$out"
  (cd "$T/src/k8s" && $NICE go build -mod=readonly -trimpath -ldflags "$LD" -o "$out/" "${pkgs[@]}")
  [ -f "$out/server" ] && mv "$out/server" "$out/etcd"
  mv "$out"/* "$T/bin/" && rmdir "$out"
  stamp k8s "${todo[@]}"
  log "kubernetes + etcd: $(( $(date +%s) - t0 )) s"
fi

# --- 3. CoreDNS v1.15.0 (own module; modules/coredns/main.go links the plugins we use) ---
if [ -n "$(missing coredns coredns)" ]; then
  sync_mod coredns
  log "building coredns v1.15.0"
  t0=$(date +%s)
  (cd "$T/src/coredns" && $NICE go build -mod=readonly -trimpath -ldflags "-s -w" -o "$T/bin/coredns" .)
  stamp coredns coredns
  log "coredns: $(( $(date +%s) - t0 )) s"
fi

# --- 4. images FROM scratch: pod sandbox (pause) and the smoke-test HTTP server ---
for img in pause hello; do
  if [ "${SHOAL_KUBE_REBUILD:-0}" = 1 ] || [ ! -s "$T/images/$img.tar" ] ||
     [ -n "$(find "$here/images" -type f -newer "$T/images/$img.tar" | head -1)" ]; then
    rm -rf "$T/src/images" && cp -r "$here/images" "$T/src/images"
    (cd "$T/src/images" && go build -trimpath -ldflags "-s -w" -o "$T/images/$img.bin" "./$img")
    bash "$here/images/mkimage.sh" "ksn.local/$img:1" "$T/images/$img.bin" "$T/images/$img.tar"
    log "image ksn.local/$img:1 -> $T/images/$img.tar"
  fi
done
log "done: $(ls "$T/bin" | tr '\n' ' ')"
