#!/bin/bash
# down.sh — stop the cluster that test/kube/up.sh started and undo what it changed on the host.
#
# Ends only the processes whose pids up.sh recorded (plus the containerd shims of the
# private containerd, found by its socket path), unmounts what is mounted under $SHOAL_KUBE_DIR,
# removes the ksn0 bridge (and with it the service-range route), every iptables/ip6tables
# chain that appeared with the cluster (kube-proxy's KUBE-*, the kubelet's, CNI-*, KSN-NO-SERVICE)
# and the rules that jump to them, nft tables that appeared and are empty, and puts back the
# sysctls saved by up.sh. Keeps $SHOAL_KUBE_DIR/logs; SHOAL_KUBE_PURGE=1 removes the directory.
set -uo pipefail
D=${SHOAL_KUBE_DIR:-/tmp/shoal-kube}
C=$D/containerd
[ -d "$D" ] || { echo "[shoal-kube down] nothing at $D"; exit 0; }
T0=$(date +%s)
log() { echo "[shoal-kube down +$(( $(date +%s) - T0 ))s] $*"; }
BIN=$(cat "$D/bin-dir" 2>/dev/null || echo /nonexistent)
KUBECTL=$BIN/kubectl; [ -x "$KUBECTL" ] || KUBECTL=$(command -v kubectl || true)
CTR="ctr --address $C/containerd.sock -n k8s.io"

live() { [ -r "/proc/$1/status" ] && ! grep -q '^State:[[:space:]]*Z' "/proc/$1/status"; }  # zombies count as gone
stop() { # name [seconds]: TERM, then KILL, the pid in pids/name.pid if it is still that program
  local f=$D/pids/$1.pid pid i
  [ -f "$f" ] || return 0
  pid=$(cat "$f")
  if live "$pid" && tr '\0' ' ' < "/proc/$pid/cmdline" | grep -q -- "$1"; then
    kill -TERM "$pid"
    for i in $(seq 1 $(( ${2:-15} * 10 ))); do live "$pid" || break; sleep 0.1; done
    live "$pid" && { log "$1 ($pid) did not stop: KILL"; kill -KILL "$pid"; }
    log "stopped $1 ($pid)"
  fi
  rm -f "$f"
}
running() { [ -f "$D/pids/$1.pid" ] && live "$(cat "$D/pids/$1.pid")"; }

# 1. no more new pods; then let the kubelet tear pods down through CRI (CNI DEL included)
stop kube-controller-manager
stop kube-scheduler
if running kube-apiserver && running kubelet && [ -n "$KUBECTL" ]; then
  KUBECONFIG=$D/kubeconfig "$KUBECTL" delete pods --all -A --force --grace-period=0 --wait=false >/dev/null 2>&1
  for i in $(seq 1 60); do
    [ -z "$($CTR tasks ls -q 2>/dev/null)" ] && break
    sleep 1
  done
  log "pods deleted; containerd tasks left: $($CTR tasks ls -q 2>/dev/null | wc -l)"
fi
stop kubelet
stop kube-proxy
stop coredns

# 2. whatever is left in the private containerd
if running containerd; then
  for t in $($CTR tasks ls -q 2>/dev/null); do $CTR tasks kill -s SIGKILL "$t" >/dev/null 2>&1; done
  sleep 1
  for t in $($CTR tasks ls -q 2>/dev/null); do $CTR tasks delete -f "$t" >/dev/null 2>&1; done
fi
stop containerd
# shims of this containerd (their command line names its socket)
for p in $(pgrep -f "containerd-shim-runc-v2 .*-address $C/containerd.sock" || true); do
  kill -KILL "$p" 2>/dev/null && log "killed shim $p"
done
# processes still in the kubelet's pod cgroups (cgroupfs driver, /kubepods) can only be this
# cluster's containers: kill them, then remove those cgroups (cgroup v1: one tree per controller)
for f in $(find /sys/fs/cgroup/pids/kubepods -name cgroup.procs 2>/dev/null); do
  for p in $(cat "$f"); do kill -KILL "$p" 2>/dev/null && log "killed leftover container process $p"; done
done
for ctl in /sys/fs/cgroup/*/kubepods; do
  [ -d "$ctl" ] && find "$ctl" -depth -type d -exec rmdir {} \; 2>/dev/null
done
stop kube-apiserver
stop etcd

# 3. mounts under $D (pod volumes, rootfs overlays, netns), deepest first
awk -v d="$D/" 'index($2, d) == 1 {print $2}' /proc/self/mounts | sort -r | while read -r m; do
  umount "$m" 2>/dev/null || umount -l "$m" 2>/dev/null
done

# 4. network: the bridge (its routes go with it: pod range and service range)
br=$(cat "$D/bridge" 2>/dev/null || echo ksn0)
[ -s "$D/svc-route" ] && ip route del "$(cat "$D/svc-route")" dev "$br" 2>/dev/null && log "removed route $(cat "$D/svc-route") dev $br"
ip link show "$br" >/dev/null 2>&1 && ip link del "$br" && log "removed bridge $br"
# iptables and ip6tables chains (KUBE-*, CNI-*, KSN-*) that were not there before up.sh: first the rules in older
# chains that jump to them, then flush them all, then delete them all (they may jump to each other)
if [ -s "$D/iptables.before" ]; then
  for fam in iptables ip6tables; do
    for table in filter nat mangle raw; do
      rules=$($fam -t $table -S 2>/dev/null) || continue
      # only names the cluster's programs use: a chain Docker (or anyone) added meanwhile stays
      new=$(awk '$1=="-N" && $2 ~ /^(KUBE-|CNI-|KSN-)/ {print $2}' <<<"$rules" |
            while read -r c; do grep -qx "$fam $table $c" "$D/iptables.before" || echo "$c"; done)
      [ -n "$new" ] || continue
      awk -v new="$new" 'BEGIN{n=split(new, a, "\n"); for (i=1;i<=n;i++) isnew[a[i]]=1}
        $1=="-A" && !isnew[$2] { for (i=3;i<NF;i++) if (($i=="-j" || $i=="-g") && isnew[$(i+1)]) { print; break } }' <<<"$rules" |
        sed 's/^-A/-D/' | while read -r rule; do eval $fam -t $table "$rule" 2>/dev/null; done
      for c in $new; do $fam -t $table -F "$c" 2>/dev/null; done
      n=0; for c in $new; do $fam -t $table -X "$c" 2>/dev/null && n=$((n+1)); done
      log "removed $n $fam $table chains"
    done
  done
fi
# nft tables that appeared with the cluster (iptables-nft creates e.g. ip6 nat on first use), if
# they hold no rules any more
if [ -f "$D/nft.before" ] && command -v nft >/dev/null; then
  nft list tables 2>/dev/null | while read -r _ fam name; do
    grep -qx "table $fam $name" "$D/nft.before" && continue
    # no rules left (only the base chains iptables-nft registers): delete it
    if ! nft list table "$fam" "$name" 2>/dev/null | grep -vqE '^\s*(table |chain |type |policy |}|$)'; then
      nft delete table "$fam" "$name" 2>/dev/null && log "removed empty nft table $fam $name"
    else
      log "nft table $fam $name appeared during the run and is not empty: left alone"
    fi
  done
fi

# 5. sysctls (kubelet node tunables, forwarding, bridge netfilter, conntrack)
if [ -s "$D/sysctl.saved" ]; then
  while IFS== read -r k v; do
    [ -n "$v" ] && [ "$(sysctl -n "$k" 2>/dev/null)" != "$v" ] && sysctl -qw "$k=$v" && log "restored $k=$v"
  done < "$D/sysctl.saved"
fi

# 6. files
if [ "${SHOAL_KUBE_PURGE:-0}" = 1 ]; then
  rm -rf "$D" && log "removed $D"
else
  find "$D" -mindepth 1 -maxdepth 1 ! -name logs -exec rm -rf {} + 2>/dev/null
  log "removed $D except $D/logs"
fi
