#!/bin/bash
# smoke.sh — prove the cluster that test/kube/up.sh started runs real workloads with working
# Services (kube-proxy) and cluster DNS (CoreDNS). helm-installs testdata/ksn-smoke:
#   smoke-agent   hostNetwork DaemonSet, dnsPolicy ClusterFirstWithHostNet, port 28080,
#                 plus a ClusterIP Service smoke-agent:80 whose endpoint is the node IP
#   smoke-origin  2-replica StatefulSet behind the headless Service smoke-origin
#   smoke-web     2-replica Deployment behind the ClusterIP Service smoke-web:80
# and checks, with the hello binary as the probe (`/entry lookup|get`, run by kubectl exec in a
# pod, or on the host against CoreDNS): names resolve from a normal pod and from the hostNetwork
# pod, pods and the host reach ClusterIPs, names outside cluster.local fail fast, an unused
# cluster IP fails fast. Also logs/exec/port-forward through the kubelet, then helm uninstall.
# Ends with 'N passed, N failed'; exits 1 if any check failed.
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
D=${SHOAL_KUBE_DIR:-/tmp/shoal-kube}
[ -s "$D/env" ] || { echo "no cluster at $D (run test/kube/up.sh)"; exit 1; }
. "$D/env"
T=$(dirname "$(cat "$D/bin-dir")")
PROBE=$T/images/hello.bin                    # the same program as in the image, for the host side
PORT=${SHOAL_KUBE_SMOKE_PORT:-28080}
NS=default
pass=0 fail=0
check() { local what=$1; shift; if "$@"; then echo "ok   $what"; pass=$((pass+1)); else echo "FAIL $what"; fail=$((fail+1)); fi; }
k() { "$KUBECTL" "$@"; }
ms() { echo $(( $(date +%s%N) / 1000000 )); }
nx_within() { grep -q 'no such host' <<<"$1" && [ "$2" -lt "$3" ]; }   # output, took ms, limit ms
t0=$(date +%s)

check "server-side dry run accepts the chart" sh -c "'$HELM' template smoke '$here/testdata/ksn-smoke' --set agent.port=$PORT | '$KUBECTL' apply --dry-run=server -f - >/dev/null"
check "server-side dry run rejects replicas=-3" sh -c "'$HELM' template smoke '$here/testdata/ksn-smoke' --set origin.replicas=-3 | '$KUBECTL' apply --dry-run=server -f - 2>&1 | grep -q 'must be greater than or equal to 0'"
check "helm install --wait" "$HELM" install smoke "$here/testdata/ksn-smoke" --set agent.port=$PORT --wait --timeout 3m
check "agent DaemonSet rolled out" k rollout status ds/smoke-agent --timeout=120s
check "origin StatefulSet rolled out" k rollout status sts/smoke-origin --timeout=120s
check "web Deployment rolled out" k rollout status deploy/smoke-web --timeout=120s
k get pods,svc -o wide

agent=$(k get pods -l app.kubernetes.io/name=agent -o jsonpath='{.items[0].metadata.name}')
web_ip=$(k get svc smoke-web -o jsonpath='{.spec.clusterIP}')
agent_svc_ip=$(k get svc smoke-agent -o jsonpath='{.spec.clusterIP}')
o0=$(k get pod smoke-origin-0 -o jsonpath='{.status.podIP}')
o1=$(k get pod smoke-origin-1 -o jsonpath='{.status.podIP}')
origins=$(printf '%s\n' "$o0" "$o1" | sort | tr '\n' ' ' | sed 's/ $//')
node_ip=$(k get node "$SHOAL_KUBE_NODE" -o jsonpath='{.status.addresses[?(@.type=="InternalIP")].address}')
echo "node InternalIP $node_ip; smoke-web ClusterIP $web_ip; smoke-agent ClusterIP $agent_svc_ip; origins $origins"
check "node InternalIP is the bridge address $SHOAL_KUBE_HOST_IP" [ "$node_ip" = "$SHOAL_KUBE_HOST_IP" ]

body=$(curl -sf --max-time 5 "http://127.0.0.1:$PORT/")
check "agent serves HTTP on the node: '$body'" grep -q "hello from pod=smoke-agent-" <<<"$body"
check "kubectl logs via the kubelet" sh -c "'$KUBECTL' logs ds/smoke-agent | grep -q listening"
check "kubectl exec via the kubelet and containerd" sh -c "'$KUBECTL' exec smoke-origin-0 -- /entry 2>&1 | grep -q 'address already in use'"

# expect_lookup WHERE NAME WANT: WHERE is a pod name or "host" (CoreDNS asked directly)
expect_lookup() {
  local where=$1 name=$2 want=$3 got
  if [ "$where" = host ]; then got=$(DNS_SERVER=$SHOAL_KUBE_DNS "$PROBE" lookup "$name" 2>&1)
  else got=$(k exec "$where" -- /entry lookup "$name" 2>&1); fi
  got=${got#"$name "}
  [ "$got" = "$want" ] || { echo "     $where: $name -> '$got', want '$want'"; return 1; }
}
# kube-proxy programs a Service a moment after its pods turn Ready (helm --wait does not cover it)
for i in $(seq 1 30); do curl -sf --max-time 2 -o /dev/null "http://$web_ip/" && curl -sf --max-time 2 -o /dev/null "http://$agent_svc_ip/" && break; sleep 0.5; done
# --- DNS from a pod on the pod network (dnsPolicy ClusterFirst) ---
p=smoke-origin-0
check "pod: smoke-web.default.svc.cluster.local -> ClusterIP $web_ip" expect_lookup $p smoke-web.$NS.svc.cluster.local "$web_ip"
check "pod: short name smoke-web (search path) -> $web_ip" expect_lookup $p smoke-web "$web_ip"
check "pod: headless smoke-origin.default.svc.cluster.local -> both pod IPs" expect_lookup $p smoke-origin.$NS.svc.cluster.local "$origins"
check "pod: smoke-origin-1.smoke-origin.default.svc.cluster.local -> $o1" expect_lookup $p smoke-origin-1.smoke-origin.$NS.svc.cluster.local "$o1"
check "pod: kubernetes.default -> 10.96.0.1" expect_lookup $p kubernetes.default 10.96.0.1
a=$(ms); out=$(k exec $p -- /entry lookup shoal-smoke.example.com 2>&1 | head -1); b=$(ms)
check "pod: a name outside cluster.local fails fast, not forwarded ($((b - a)) ms incl. exec): ${out#* }" nx_within "$out" $((b - a)) 3000
# --- Services from a pod ---
out=$(k exec $p -- /entry get http://smoke-web/ 2>&1)
check "pod -> ClusterIP Service by name (http://smoke-web/): $out" grep -q "hello from pod=smoke-web-" <<<"$out"
out=$(k exec $p -- /entry get "http://$web_ip/" 2>&1)
check "pod -> ClusterIP $web_ip: $out" grep -q "hello from pod=smoke-web-" <<<"$out"
out=$(k exec $p -- /entry get http://smoke-agent.$NS.svc.cluster.local/ 2>&1)
check "pod -> ClusterIP Service of the hostNetwork agent (endpoint = node IP): $out" grep -q "hello from pod=smoke-agent-" <<<"$out"
out=$(k exec $p -- /entry get "http://smoke-origin-1.smoke-origin:8080/" 2>&1)
check "pod -> a StatefulSet pod by its per-pod name: $out" grep -q "pod=smoke-origin-1" <<<"$out"
# --- hostNetwork pod, dnsPolicy ClusterFirstWithHostNet ---
check "hostNetwork pod: smoke-web.default.svc.cluster.local -> $web_ip" expect_lookup "$agent" smoke-web.$NS.svc.cluster.local "$web_ip"
check "hostNetwork pod: smoke-origin-0.smoke-origin.default.svc.cluster.local -> $o0" expect_lookup "$agent" smoke-origin-0.smoke-origin.$NS.svc.cluster.local "$o0"
check "hostNetwork pod: headless smoke-origin.default.svc.cluster.local -> both pod IPs" expect_lookup "$agent" smoke-origin.$NS.svc.cluster.local "$origins"
check "hostNetwork pod: short name smoke-origin-1.smoke-origin (search path) -> $o1" expect_lookup "$agent" smoke-origin-1.smoke-origin "$o1"
out=$(k exec "$agent" -- /entry get http://smoke-web.$NS.svc.cluster.local/ 2>&1)
check "hostNetwork pod -> ClusterIP Service by name: $out" grep -q "hello from pod=smoke-web-" <<<"$out"
# --- the host itself ---
out=$(curl -sf --max-time 5 "http://$web_ip/")
check "host -> ClusterIP (curl http://$web_ip/): $out" grep -q "hello from pod=smoke-web-" <<<"$out"
out=$(curl -sf --max-time 5 "http://$agent_svc_ip/")
check "host -> ClusterIP with a hostNetwork endpoint (curl http://$agent_svc_ip/): $out" grep -q "hello from pod=smoke-agent-" <<<"$out"
check "host: CoreDNS at $SHOAL_KUBE_DNS answers smoke-origin-0.smoke-origin.default.svc.cluster.local" expect_lookup host smoke-origin-0.smoke-origin.$NS.svc.cluster.local "$o0"
out=$(DNS_SERVER=$SHOAL_KUBE_DNS "$PROBE" reverse "$web_ip" 2>&1)
check "host: CoreDNS reverse lookup of the ClusterIP: $out" grep -q "smoke-web.$NS.svc.cluster.local." <<<"$out"
a=$(ms); out=$(DNS_SERVER=$SHOAL_KUBE_DNS "$PROBE" lookup shoal-smoke.example.com 2>&1); b=$(ms)
check "host: CoreDNS answers a name outside cluster.local with NXDOMAIN at once ($((b - a)) ms): ${out#* }" nx_within "$out" $((b - a)) 1000
a=$(ms); curl -s --max-time 5 -o /dev/null "http://10.96.0.254/"; rc=$?; b=$(ms)
check "host: a cluster IP without a Service fails at once, never routed out (curl rc=$rc, $((b - a)) ms)" sh -c "[ $rc != 0 ] && [ $rc != 28 ] && [ $((b - a)) -lt 1000 ] && ip route get 10.96.0.254 | grep -q 'dev ksn0'"

# --- port-forward (kubelet streaming) ---
PF=$((PORT + 1))
"$KUBECTL" port-forward pod/smoke-origin-0 "$PF:8080" >/dev/null 2>&1 &
pf=$!
for i in $(seq 1 20); do curl -sf --max-time 2 "http://127.0.0.1:$PF/" >/dev/null && break; sleep 0.5; done
body=$(curl -sf --max-time 5 "http://127.0.0.1:$PF/")
kill "$pf" 2>/dev/null; wait "$pf" 2>/dev/null
check "origin on the pod network reached through port-forward on 127.0.0.1: '$body'" grep -q "pod=smoke-origin-0" <<<"$body"
check "helm uninstall --wait" "$HELM" uninstall smoke --wait --timeout 2m
echo "smoke took $(( $(date +%s) - t0 )) s"
echo "$pass passed, $fail failed"
[ "$fail" = 0 ]
