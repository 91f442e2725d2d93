{{/*
The binaries' config files (keys of config/<binary>.yaml), each merged with
<component>.config from the values. Per-pod values (the pod IP, the node IP) are flags
in the pod specs: --peer-ip, --advertise.
*/}}

{{- define "shoal.config.proxy" -}}
{{- $cfg := dict
  "listen" (printf "0.0.0.0:%d" (int .Values.proxy.port))
  "log" (include "shoal.logBlock" . | fromYaml)
  "origins" (include "shoal.originsBlock" . | fromYaml)
  "build_index" (include "shoal.buildIndexURL" .) -}}
{{- include "shoal.preheatCheck" . -}}
{{- if .Values.preheat.enabled }}{{ $_ := set $cfg "preheat" (include "shoal.preheatBlock" . | fromYaml) }}{{ end -}}
{{- toYaml (mustMergeOverwrite $cfg (deepCopy .Values.proxy.config)) -}}
{{- end -}}

{{- define "shoal.config.buildindex" -}}
{{- $cfg := dict
  "listen" (printf "0.0.0.0:%d" (int .Values.buildindex.port))
  "data_dir" "/var/lib/shoal/buildindex"
  "log" (include "shoal.logBlock" . | fromYaml)
  "backend" (include "shoal.backendBlock" . | fromYaml) -}}
{{- $ns := include "shoal.namespaces" . | fromYamlArray -}}
{{- if $ns }}{{ $_ := set $cfg "namespaces" $ns }}{{ end -}}
{{- toYaml (mustMergeOverwrite $cfg (deepCopy .Values.buildindex.config)) -}}
{{- end -}}

{{- define "shoal.config.tracker" -}}
{{- $t := .Values.tracker -}}
{{- $cfg := dict
  "listen" (printf "0.0.0.0:%d" (int $t.port))
  "log" (include "shoal.logBlock" . | fromYaml)
  "origins" (include "shoal.originsBlock" . | fromYaml)
  "announce_interval" $t.announceInterval
  "seeder_interval" $t.seederInterval
  "peer_ttl" $t.peerTTL
  "max_peers" (int $t.maxPeers)
  "warm" (dict "agent_ttl" $t.warm.agentTTL) -}}
{{- toYaml (mustMergeOverwrite $cfg (deepCopy $t.config)) -}}
{{- end -}}

{{- define "shoal.config.origin" -}}
{{- $o := .Values.origin -}}
{{- $cfg := dict
  "listen" (printf "0.0.0.0:%d" (int $o.port))
  "data_dir" "/var/lib/shoal/origin"
  "log" (include "shoal.logBlock" . | fromYaml)
  "p2p" (dict "listen_port" (int $o.peerPort) "max_conns_per_torrent" (int $o.maxConnsPerTorrent))
  "backend" (include "shoal.backendBlock" . | fromYaml)
  "eviction" (include "shoal.evictionBlock" $o.eviction | fromYaml)
  "cluster" (include "shoal.originsBlock" . | fromYaml) -}}
{{- $ns := include "shoal.namespaces" . | fromYamlArray -}}
{{- if $ns }}{{ $_ := set $cfg "namespaces" $ns }}{{ end -}}
{{- toYaml (mustMergeOverwrite $cfg (deepCopy $o.config)) -}}
{{- end -}}

{{- define "shoal.config.agent" -}}
{{- $a := .Values.agent -}}
{{- $ups := list -}}
{{- range .Values.upstreams }}{{ $ups = append $ups (dict "host" .host "url" .url) }}{{ end -}}
{{- $cfg := dict
  "listen" (printf "%s:%d" $a.listenHost (int $a.port))
  "data_dir" "/var/lib/shoal/agent"
  "log" (include "shoal.logBlock" . | fromYaml)
  "p2p" (dict "listen_port" (int $a.peerPort))
  "trackers" (include "shoal.trackersBlock" . | fromYaml)
  "build_index" (include "shoal.buildIndexURL" .)
  "origins" (include "shoal.originsBlock" . | fromYaml)
  "proxy" (include "shoal.registryHost" .)
  "eviction" (include "shoal.evictionBlock" $a.eviction | fromYaml)
  "warm" (dict "poll_interval" (toString $a.warm.pollInterval) "max_blobs" (int $a.warm.maxBlobs))
  "mirror" (dict
    "upstreams" $ups
    "containerd" (dict
      "hosts_dir" .Values.containerd.hostsDir
      "dial_timeout" .Values.containerd.dialTimeout
      "default" .Values.containerd.default)) -}}
{{- toYaml (mustMergeOverwrite $cfg (deepCopy $a.config)) -}}
{{- end -}}
