#!/bin/bash
# import.sh IMAGE.tar... — import image archives (docker save / OCI) into the running test
# cluster's containerd (namespace k8s.io), so pods can use them with imagePullPolicy
# IfNotPresent or Never. up.sh calls it for its arguments and $SHOAL_KUBE_IMAGES.
set -euo pipefail
D=${SHOAL_KUBE_DIR:-/tmp/shoal-kube}
sock=$D/containerd/containerd.sock
[ -S "$sock" ] || { echo "[shoal-kube import] no containerd at $sock: run test/kube/up.sh" >&2; exit 1; }
for tarball in "$@"; do
  t0=$(date +%s.%N)
  out=$(ctr --address "$sock" -n k8s.io images import "$tarball" 2>&1) || { echo "[shoal-kube import] $tarball: $out" >&2; exit 1; }
  echo "[shoal-kube import] $tarball ($(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN{printf "%.1f", b-a}') s): $(echo "$out" | awk '/^unpacking/{print $2}' | tr '\n' ' ')"
done
