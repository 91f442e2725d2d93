#!/bin/bash
# up.sh — bring up Shoal's real single-node Kubernetes v1.37.2 for tests, from nothing:
#
#   etcd -> kube-apiserver -> kube-controller-manager + kube-scheduler
#   -> bridge ksn0 (10.244.0.1/24) + service route -> private containerd (Debian's 1.6.20)
#   -> kubelet (node IP 10.244.0.1) -> node Ready -> kube-proxy (iptables) + CoreDNS
#
# Control-plane programs listen on 127.0.0.1 only; CoreDNS on the bridge address
# 10.244.0.1:53 (host-only bridge). All state is under $SHOAL_KUBE_DIR (default /tmp/shoal-kube),
# binaries under <repo>/.tools/kube/bin (build.sh; built once, then reused).
# Docker, its containerd and the system containerd are not touched.
#
# Usage (as root):  bash test/kube/up.sh [IMAGE.tar ...]
#   Each IMAGE.tar (docker-save or OCI archive), and each one in $SHOAL_KUBE_IMAGES
#   (whitespace-separated), is imported into the cluster's containerd (namespace k8s.io)
#   once the node is Ready; use imagePullPolicy IfNotPresent/Never. Later: test/kube/import.sh.
# After it returns:  . /tmp/shoal-kube/env   (KUBECONFIG, KUBECTL, HELM, SHOAL_KUBE_CERTS_D, ...)
# Stop with test/kube/down.sh.
#
# Env: SHOAL_KUBE_DIR (/tmp/shoal-kube)  SHOAL_KUBE_TOOLS (<repo>/.tools/kube)
#      SHOAL_KUBE_TIMEOUT (180 s per wait)  SHOAL_KUBE_IMAGES (archives to import)
#      ports: SHOAL_KUBE_ETCD_PORT 22379 (+1 peer), SHOAL_KUBE_API_PORT 26443,
#             SHOAL_KUBE_KCM_PORT 20257, SHOAL_KUBE_SCHED_PORT 20259,
#             SHOAL_KUBE_KUBELET_PORT 20250, SHOAL_KUBE_KUBELET_HEALTHZ 20248,
#             SHOAL_KUBE_PROXY_HEALTHZ 20256, SHOAL_KUBE_PROXY_METRICS 20249,
#             SHOAL_KUBE_DNS_HEALTH 20181, SHOAL_KUBE_DNS_READY 20182
#      SHOAL_KUBE_POD_CIDR (10.244.0.0/24: bridge ksn0, its first address is the host and node IP)
#      SHOAL_KUBE_SVC_CIDR (10.96.0.0/24: routed to ksn0, so kube-proxy's DNAT applies and
#                           nothing in it can leave by the default route)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
D=${SHOAL_KUBE_DIR:-/tmp/shoal-kube}
T=${SHOAL_KUBE_TOOLS:-$repo/.tools/kube}
BIN=$T/bin
TMO=${SHOAL_KUBE_TIMEOUT:-180}
ETCD_PORT=${SHOAL_KUBE_ETCD_PORT:-22379}; ETCD_PEER=$((ETCD_PORT + 1))
API_PORT=${SHOAL_KUBE_API_PORT:-26443}
KCM_PORT=${SHOAL_KUBE_KCM_PORT:-20257}
SCHED_PORT=${SHOAL_KUBE_SCHED_PORT:-20259}
KUBELET_PORT=${SHOAL_KUBE_KUBELET_PORT:-20250}
KUBELET_HEALTHZ=${SHOAL_KUBE_KUBELET_HEALTHZ:-20248}
PROXY_HEALTHZ=${SHOAL_KUBE_PROXY_HEALTHZ:-20256}
PROXY_METRICS=${SHOAL_KUBE_PROXY_METRICS:-20249}
DNS_HEALTH=${SHOAL_KUBE_DNS_HEALTH:-20181}
DNS_READY=${SHOAL_KUBE_DNS_READY:-20182}
POD_CIDR=${SHOAL_KUBE_POD_CIDR:-10.244.0.0/24}
SVC_CIDR=${SHOAL_KUBE_SVC_CIDR:-10.96.0.0/24}
BRIDGE=ksn0
HOST_IP=$(echo "$POD_CIDR" | awk -F'[./]' '{print $1"."$2"."$3"."$4+1}')   # 10.244.0.1
POD_PREFIX=${POD_CIDR#*/}
T0=$(date +%s)
log() { echo "[shoal-kube +$(( $(date +%s) - T0 ))s] $*"; }
die() { echo "[shoal-kube] ERROR: $*" >&2; exit 1; }

[ "$(id -u)" = 0 ] || die "must run as root"
live() { [ -r "/proc/$1/status" ] && ! grep -q '^State:[[:space:]]*Z' "/proc/$1/status"; }  # zombies count as gone
if ls "$D/pids"/*.pid >/dev/null 2>&1; then
  for f in "$D/pids"/*.pid; do
    p=$(cat "$f"); live "$p" && die "a cluster is running ($(basename "$f" .pid) pid $p): run test/kube/down.sh first"
  done
  log "state left by an earlier run that was not taken down: running down.sh"
  bash "$here/down.sh"
fi
# same ports, bridge and CIDRs as the shared kube-single-node tool: only one of them at a time
for f in /tmp/ksn/pids/*.pid; do
  [ -f "$f" ] && live "$(cat "$f")" && die "the shared kube-single-node cluster (/tmp/ksn) is running: stop it first"
done
ip link show "$BRIDGE" >/dev/null 2>&1 && die "bridge $BRIDGE exists but no cluster state in $D: remove it (ip link del $BRIDGE) or run its owner's down.sh"
for p in $ETCD_PORT $ETCD_PEER $API_PORT $KCM_PORT $SCHED_PORT $KUBELET_PORT $KUBELET_HEALTHZ $PROXY_HEALTHZ $PROXY_METRICS $DNS_HEALTH $DNS_READY; do
  [ -z "$(ss -Hltn "sport = :$p" 2>/dev/null)" ] || die "port $p is in use: $(ss -Hltnp "sport = :$p" | head -1)"
done

# ---- 0. host packages (Debian). kube-proxy 1.37 cleans conntrack entries through netlink,
#         so the conntrack tool is not needed (checked in its source and its logs). ----
missing=()
command -v containerd >/dev/null || missing+=(containerd)
command -v runc >/dev/null || missing+=(runc)
command -v iptables >/dev/null || missing+=(iptables)
command -v openssl >/dev/null || missing+=(openssl)
command -v curl >/dev/null || missing+=(curl)
command -v ss >/dev/null || missing+=(iproute2)
[ -x /usr/lib/cni/bridge ] || missing+=(containernetworking-plugins)
if [ ${#missing[@]} -gt 0 ]; then
  log "apt-get install ${missing[*]}"
  apt-get update -qq >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
fi

# ---- 1. binaries ----
bash "$here/build.sh"
KUBECTL=$BIN/kubectl; [ -x "$KUBECTL" ] || KUBECTL=$(command -v kubectl) || die "no kubectl"
log "binaries ready"

mkdir -p "$D"/{pki,logs,pids,etcd,kubelet,cni/net.d,cni/ipam,containerd/certs.d,coredns}
echo "$BIN" > "$D/bin-dir"

# node name: must resolve to loopback, since the apiserver reaches the kubelet by Hostname
NODE=$(hostname)
case "$(getent ahostsv4 "$NODE" 2>/dev/null | awk 'NR==1{print $1}')" in
  127.*) ;; *) NODE=localhost ;;
esac
echo "$NODE" > "$D/node-name"

# ---- 2. PKI (EC P-256, openssl) and kubeconfigs ----
P=$D/pki
if [ ! -s "$P/ca.crt" ]; then
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 3650 \
    -subj "/CN=shoal-kube-ca" -keyout "$P/ca.key" -out "$P/ca.crt" 2>/dev/null
  openssl ecparam -name prime256v1 -genkey -noout -out "$P/sa.key" 2>/dev/null
  openssl ec -in "$P/sa.key" -pubout -out "$P/sa.pub" 2>/dev/null
fi
svc_ip=$(echo "$SVC_CIDR" | awk -F'[./]' '{print $1"."$2"."$3"."$4+1}')
mkcert() { # name subject eku [sans]
  local n=$1 subj=$2 eku=$3 sans=${4:-}
  openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -subj "$subj" \
    -keyout "$P/$n.key" -out "$P/$n.csr" 2>/dev/null
  { echo "basicConstraints=CA:FALSE"; echo "keyUsage=critical,digitalSignature,keyEncipherment"
    echo "extendedKeyUsage=$eku"; [ -n "$sans" ] && echo "subjectAltName=$sans"; } > "$P/$n.ext"
  openssl x509 -req -in "$P/$n.csr" -CA "$P/ca.crt" -CAkey "$P/ca.key" -CAcreateserial \
    -days 3650 -extfile "$P/$n.ext" -out "$P/$n.crt" 2>/dev/null
  rm -f "$P/$n.csr" "$P/$n.ext"
}
mkcert apiserver "/CN=kube-apiserver" serverAuth \
  "IP:127.0.0.1,IP:$svc_ip,DNS:localhost,DNS:$NODE,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.cluster.local"
mkcert apiserver-kubelet-client "/O=system:masters/CN=kube-apiserver-kubelet-client" clientAuth
mkcert admin "/O=system:masters/CN=shoal-kube-admin" clientAuth
mkcert controller-manager "/CN=system:kube-controller-manager" clientAuth
mkcert scheduler "/CN=system:kube-scheduler" clientAuth
mkcert kubelet "/O=system:nodes/CN=system:node:$NODE" clientAuth
mkcert kube-proxy "/CN=system:kube-proxy" clientAuth          # bound to system:node-proxier by default
mkcert coredns "/CN=shoal-kube:coredns" clientAuth           # ClusterRole below
b64() { base64 -w0 "$1"; }
mkkubeconfig() { # file cert
  cat > "$1" <<EOF
apiVersion: v1
kind: Config
clusters:
- name: shoal-kube
  cluster:
    server: https://127.0.0.1:$API_PORT
    certificate-authority-data: $(b64 "$P/ca.crt")
users:
- name: $2
  user:
    client-certificate-data: $(b64 "$P/$2.crt")
    client-key-data: $(b64 "$P/$2.key")
contexts:
- name: shoal-kube
  context: {cluster: shoal-kube, user: $2}
current-context: shoal-kube
EOF
  chmod 600 "$1"
}
for u in admin controller-manager scheduler kubelet kube-proxy coredns; do
  f=$D/$u.kubeconfig; [ $u = admin ] && f=$D/kubeconfig
  mkkubeconfig "$f" $u
done
log "certificates and kubeconfigs in $D"

start() { # name cmd... : runs detached, pid in $D/pids/name.pid, log in $D/logs/name.log
  local n=$1; shift
  setsid "$@" >"$D/logs/$n.log" 2>&1 < /dev/null &
  echo $! > "$D/pids/$n.pid"
}
waitfor() { # what process cmd... : poll cmd each second; fail fast if process (a name under pids/) died
  local what=$1 proc=$2; shift 2; local t=$(( $(date +%s) + TMO ))
  until "$@" >/dev/null 2>&1; do
    if [ -n "$proc" ] && ! live "$(cat "$D/pids/$proc.pid")"; then
      die "$proc exited; last lines of $D/logs/$proc.log:
$(tail -15 "$D/logs/$proc.log")"
    fi
    [ "$(date +%s)" -lt "$t" ] || die "timed out waiting for $what (logs: $D/logs)"
    sleep 0.5
  done
  log "$what: up"
}
api() { curl -sf --cacert "$P/ca.crt" --cert "$P/admin.crt" --key "$P/admin.key" "https://127.0.0.1:$API_PORT$1"; }
export KUBECONFIG=$D/kubeconfig

# ---- 3. etcd (plain http on loopback; no fsync: a throwaway test store) ----
start etcd "$BIN/etcd" --name shoal-kube --data-dir "$D/etcd" \
  --listen-client-urls "http://127.0.0.1:$ETCD_PORT" --advertise-client-urls "http://127.0.0.1:$ETCD_PORT" \
  --listen-peer-urls "http://127.0.0.1:$ETCD_PEER" --initial-advertise-peer-urls "http://127.0.0.1:$ETCD_PEER" \
  --initial-cluster "shoal-kube=http://127.0.0.1:$ETCD_PEER" --unsafe-no-fsync --log-level warn
waitfor etcd etcd sh -c "curl -sf http://127.0.0.1:$ETCD_PORT/health | grep -q true"

# ---- 4. kube-apiserver ----
start kube-apiserver "$BIN/kube-apiserver" \
  --etcd-servers "http://127.0.0.1:$ETCD_PORT" \
  --bind-address 127.0.0.1 --secure-port "$API_PORT" --advertise-address 127.0.0.1 \
  --endpoint-reconciler-type none \
  --service-cluster-ip-range "$SVC_CIDR" \
  --tls-cert-file "$P/apiserver.crt" --tls-private-key-file "$P/apiserver.key" \
  --client-ca-file "$P/ca.crt" \
  --kubelet-client-certificate "$P/apiserver-kubelet-client.crt" --kubelet-client-key "$P/apiserver-kubelet-client.key" \
  --kubelet-preferred-address-types Hostname,InternalIP \
  --service-account-issuer https://kubernetes.default.svc.cluster.local \
  --service-account-key-file "$P/sa.pub" --service-account-signing-key-file "$P/sa.key" \
  --authorization-mode Node,RBAC --enable-admission-plugins NodeRestriction \
  --allow-privileged=true --profiling=false --cert-dir "$D/pki/apiserver-selfsigned"
waitfor kube-apiserver kube-apiserver api /readyz

# ---- 5. controller-manager and scheduler ----
start kube-controller-manager "$BIN/kube-controller-manager" \
  --kubeconfig "$D/controller-manager.kubeconfig" \
  --authentication-kubeconfig "$D/controller-manager.kubeconfig" --authorization-kubeconfig "$D/controller-manager.kubeconfig" \
  --bind-address 127.0.0.1 --secure-port "$KCM_PORT" --leader-elect=false \
  --use-service-account-credentials=true \
  --service-account-private-key-file "$P/sa.key" --root-ca-file "$P/ca.crt" \
  --cluster-signing-cert-file "$P/ca.crt" --cluster-signing-key-file "$P/ca.key" \
  --service-cluster-ip-range "$SVC_CIDR" --cert-dir "$D/pki/kcm-selfsigned"
start kube-scheduler "$BIN/kube-scheduler" \
  --kubeconfig "$D/scheduler.kubeconfig" \
  --authentication-kubeconfig "$D/scheduler.kubeconfig" --authorization-kubeconfig "$D/scheduler.kubeconfig" \
  --bind-address 127.0.0.1 --secure-port "$SCHED_PORT" --leader-elect=false --cert-dir "$D/pki/sched-selfsigned"

# ---- 6. host network: what exists now is what down.sh keeps ----
for fam in iptables ip6tables; do
  for t in filter nat mangle raw; do $fam -t $t -S 2>/dev/null | awk -v f=$fam -v t=$t '$1=="-N"{print f, t, $2}'; done
done > "$D/iptables.before"
nft list tables 2>/dev/null > "$D/nft.before" || true
# kubelet (its node tunables), kube-proxy and the CNI plugins may set these: down.sh puts them back
for k in vm.overcommit_memory vm.panic_on_oom kernel.panic kernel.panic_on_oops kernel.keys.root_maxkeys \
         kernel.keys.root_maxbytes net.ipv4.ip_forward net.ipv4.conf.all.route_localnet \
         net.bridge.bridge-nf-call-iptables net.bridge.bridge-nf-call-ip6tables \
         net.netfilter.nf_conntrack_max net.netfilter.nf_conntrack_tcp_timeout_established \
         net.netfilter.nf_conntrack_tcp_timeout_close_wait; do
  v=$(sysctl -n "$k" 2>/dev/null) && echo "$k=$v"
done > "$D/sysctl.saved"
# Pod-to-Service traffic whose endpoint is on the same bridge comes back bridged, not routed:
# bridged frames must pass iptables for conntrack to undo the DNAT (br_netfilter).
if [ "$(sysctl -n net.bridge.bridge-nf-call-iptables 2>/dev/null)" != 1 ]; then
  modprobe br_netfilter 2>/dev/null || true
  sysctl -qw net.bridge.bridge-nf-call-iptables=1 || die "cannot enable net.bridge.bridge-nf-call-iptables (br_netfilter)"
fi
sysctl -qw net.ipv4.ip_forward=1
# The bridge exists before any pod, so CoreDNS can bind 10.244.0.1 and the kubelet can use it as
# the node IP. The CNI bridge plugin adopts it (same name, same gateway address).
ip link add "$BRIDGE" type bridge
echo "$BRIDGE" > "$D/bridge"
ip addr add "$HOST_IP/$POD_PREFIX" dev "$BRIDGE"
ip link set "$BRIDGE" up
# Service range: a route into the bridge instead of the shared tool's `unreachable` route.
# An unreachable route fails in the routing decision, before the nat OUTPUT chain could DNAT a
# cluster IP; a route to ksn0 lets kube-proxy's DNAT apply (locally generated traffic: nat
# OUTPUT; pods: nat PREROUTING), and a cluster IP without a rule can only go to the host-only
# bridge, where KSN-NO-SERVICE (below) rejects it at once: nothing leaves by the default route.
ip route replace "$SVC_CIDR" dev "$BRIDGE" src "$HOST_IP"
echo "$SVC_CIDR" > "$D/svc-route"
iptables -N KSN-NO-SERVICE
iptables -A KSN-NO-SERVICE -d "$SVC_CIDR" -m comment --comment "shoal-kube: cluster IP without a kube-proxy rule" \
  -j REJECT --reject-with icmp-host-unreachable
iptables -I OUTPUT 1 -j KSN-NO-SERVICE     # filter runs after nat: DNATed packets no longer match
iptables -I FORWARD 1 -j KSN-NO-SERVICE
cat > "$D/cni/net.d/10-ksn.conflist" <<EOF
{
  "cniVersion": "1.0.0",
  "name": "ksn",
  "plugins": [
    {"type": "bridge", "bridge": "$BRIDGE", "isGateway": true, "ipMasq": false, "hairpinMode": true,
     "ipam": {"type": "host-local", "ranges": [[{"subnet": "$POD_CIDR", "gateway": "$HOST_IP"}]],
              "routes": [{"dst": "$SVC_CIDR"}], "dataDir": "$D/cni/ipam"}},
    {"type": "firewall", "backend": "iptables"},
    {"type": "portmap", "capabilities": {"portMappings": true}, "snat": true}
  ]
}
EOF
log "bridge $BRIDGE $HOST_IP/$POD_PREFIX, route $SVC_CIDR dev $BRIDGE"

# ---- 7. private containerd (CRI on a socket of its own) ----
C=$D/containerd
cat > "$C/config.toml" <<EOF
version = 2
root = "$C/root"
state = "$C/state"
[grpc]
  address = "$C/containerd.sock"
[debug]
  address = ""
[metrics]
  address = ""
[plugins]
  [plugins."io.containerd.grpc.v1.cri"]
    sandbox_image = "ksn.local/pause:1"
    stream_server_address = "127.0.0.1"
    stream_server_port = "0"
    netns_mounts_under_state_dir = true
    # this machine's root lacks CAP_SYS_RESOURCE (bounding set), so runc cannot lower
    # oom_score_adj to the kubelet's -998 for sandboxes: clamp to containerd's own score
    restrict_oom_score_adj = true
    [plugins."io.containerd.grpc.v1.cri".containerd]
      snapshotter = "overlayfs"
      default_runtime_name = "runc"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
        runtime_type = "io.containerd.runc.v2"
        [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
          SystemdCgroup = false
    [plugins."io.containerd.grpc.v1.cri".cni]
      bin_dir = "/usr/lib/cni"
      conf_dir = "$D/cni/net.d"
    # registry hosts: drop $C/certs.d/<registry>/hosts.toml here to send pulls to a mirror
    # (e.g. a P2P agent on 127.0.0.1); read at pull time, no restart needed
    [plugins."io.containerd.grpc.v1.cri".registry]
      config_path = "$C/certs.d"
  [plugins."io.containerd.internal.v1.opt"]
    path = "$C/opt"
EOF
start containerd containerd --config "$C/config.toml"
CTR="ctr --address $C/containerd.sock -n k8s.io"
waitfor containerd containerd $CTR version
for tarball in "$T/images/pause.tar" "$T/images/hello.tar"; do
  $CTR images import "$tarball" >/dev/null || die "import $tarball failed"
done
log "imported ksn.local/pause:1 ksn.local/hello:1"

# ---- 8. kubelet: node IP = the bridge address (the kubelet refuses a loopback node IP) ----
cat > "$D/kubelet.yaml" <<EOF
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
address: 127.0.0.1
port: $KUBELET_PORT
readOnlyPort: 0
healthzBindAddress: 127.0.0.1
healthzPort: $KUBELET_HEALTHZ
authentication:
  anonymous: {enabled: false}
  webhook: {enabled: true}
  x509: {clientCAFile: $P/ca.crt}
authorization: {mode: Webhook}
containerRuntimeEndpoint: unix://$C/containerd.sock
cgroupDriver: cgroupfs
failCgroupV1: false
failSwapOn: false
clusterDomain: cluster.local
clusterDNS: [$HOST_IP]
resolvConf: /etc/resolv.conf
serializeImagePulls: false
maxPods: 60
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
evictionHard: {memory.available: "100Mi", nodefs.available: "1%", nodefs.inodesFree: "1%", imagefs.available: "1%"}
EOF
start kubelet "$BIN/kubelet" --config "$D/kubelet.yaml" --kubeconfig "$D/kubelet.kubeconfig" \
  --hostname-override "$NODE" --node-ip "$HOST_IP" --root-dir "$D/kubelet" --cert-dir "$D/kubelet/pki" --v=1

# ---- 9. CoreDNS RBAC (needs only the apiserver), then kube-proxy and CoreDNS on the host ----
"$KUBECTL" apply -f - >/dev/null <<EOF
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: {name: "shoal-kube:coredns"}
rules:
- {apiGroups: [""], resources: [endpoints, services, pods, namespaces], verbs: [list, watch]}
- {apiGroups: [discovery.k8s.io], resources: [endpointslices], verbs: [list, watch]}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: {name: "shoal-kube:coredns"}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: "shoal-kube:coredns"}
subjects:
- {apiGroup: rbac.authorization.k8s.io, kind: User, name: "shoal-kube:coredns"}
EOF

cat > "$D/kube-proxy.yaml" <<EOF
apiVersion: kubeproxy.config.k8s.io/v1alpha1
kind: KubeProxyConfiguration
clientConnection: {kubeconfig: $D/kube-proxy.kubeconfig}
hostnameOverride: $NODE
mode: iptables
clusterCIDR: $POD_CIDR
healthzBindAddress: 127.0.0.1:$PROXY_HEALTHZ
metricsBindAddress: 127.0.0.1:$PROXY_METRICS
# NodePorts only on the node IP (10.244.0.1), not on every local address (eth0 included)
nodePortAddresses: [primary]
# leave the host's conntrack table size and timeouts alone, and its own oom_score_adj
conntrack: {maxPerCore: 0, min: 0, tcpEstablishedTimeout: 0s, tcpCloseWaitTimeout: 0s}
oomScoreAdj: 0
# apply each Service/EndpointSlice change at once (default: at most one sync per second)
iptables: {minSyncPeriod: 0s}
EOF
start kube-proxy "$BIN/kube-proxy" --config "$D/kube-proxy.yaml"

cat > "$D/coredns/Corefile" <<EOF
# cluster.local and the reverse zones of the pod and service ranges, from the API
cluster.local:53 $(echo "$SVC_CIDR" | awk -F'[./]' '{print $3"."$2"."$1".in-addr.arpa:53"}') $(echo "$POD_CIDR" | awk -F'[./]' '{print $3"."$2"."$1".in-addr.arpa:53"}') {
    bind $HOST_IP
    errors
    health 127.0.0.1:$DNS_HEALTH
    ready 127.0.0.1:$DNS_READY
    kubernetes {
        kubeconfig $D/coredns.kubeconfig shoal-kube
        pods insecure
        ttl 5
    }
    loadbalance
}
# everything else: an immediate NXDOMAIN, never forwarded (no internet for the cluster)
.:53 {
    bind $HOST_IP
    errors
    template ANY ANY {
        rcode NXDOMAIN
    }
}
EOF
start coredns "$BIN/coredns" -conf "$D/coredns/Corefile"

node_ready() { [ "$("$KUBECTL" get node "$NODE" -o jsonpath='{.status.conditions[?(@.type=="Ready")].status}')" = True ]; }
waitfor "node $NODE Ready" kubelet node_ready
waitfor "kube-proxy (synced)" kube-proxy curl -sf "http://127.0.0.1:$PROXY_HEALTHZ/healthz"
waitfor "coredns ($HOST_IP:53)" coredns curl -sf "http://127.0.0.1:$DNS_READY/ready"
# the default ServiceAccount must exist before pods can be created in a namespace
waitfor "default serviceaccount" kube-controller-manager "$KUBECTL" -n default get serviceaccount default

cat > "$D/env" <<EOF
# . $D/env   — paths for tests against this cluster (written by test/kube/up.sh)
export KUBECONFIG=$D/kubeconfig
export KUBECTL=$KUBECTL
export HELM=$BIN/helm
export SHOAL_KUBE_DIR=$D
export SHOAL_KUBE_CERTS_D=$C/certs.d             # containerd hosts.toml dir: <registry>/hosts.toml
export SHOAL_KUBE_CONTAINERD_SOCK=$C/containerd.sock
export SHOAL_KUBE_HOST_IP=$HOST_IP                 # host (and node InternalIP) as pods see it
export SHOAL_KUBE_DNS=$HOST_IP:53                  # CoreDNS: cluster.local
export SHOAL_KUBE_NODE=$NODE
EOF

imgs=("$@")
if [ -n "${SHOAL_KUBE_IMAGES:-}" ]; then read -r -a extra <<<"$SHOAL_KUBE_IMAGES"; imgs+=("${extra[@]}"); fi
[ ${#imgs[@]} -eq 0 ] || bash "$here/import.sh" "${imgs[@]}" || die "image import failed"

log "cluster up in $(( $(date +%s) - T0 )) s: . $D/env  (KUBECONFIG=$D/kubeconfig, kubectl $KUBECTL, helm $BIN/helm)"
