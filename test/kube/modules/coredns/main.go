// Command coredns is CoreDNS v1.15.0 (github.com/coredns/coredns/coremain, unmodified)
// linked with only the plugins the single-node test cluster's Corefile uses, so the cold
// build stays small: the stock binary also links the AWS, Azure, GCP, etcd, nomad, dnstap,
// geoip, ... plugins and their SDKs, which this cluster never loads.
//
// The order in which plugins run comes from dnsserver.Directives (CoreDNS's own list),
// not from the order of the imports below.
package main

import (
	"github.com/coredns/coredns/coremain"

	_ "github.com/coredns/coredns/plugin/bind"
	_ "github.com/coredns/coredns/plugin/cache"
	_ "github.com/coredns/coredns/plugin/errors"
	_ "github.com/coredns/coredns/plugin/health"
	_ "github.com/coredns/coredns/plugin/kubernetes"
	_ "github.com/coredns/coredns/plugin/loadbalance"
	_ "github.com/coredns/coredns/plugin/log"
	_ "github.com/coredns/coredns/plugin/ready"
	_ "github.com/coredns/coredns/plugin/template"
)

func main() {
	coremain.Run()
}
