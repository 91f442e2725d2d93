// Package clientallow admits callers by address: loopback always, other addresses
// only inside a configured list of CIDR prefixes (an agent's registry serves its own
// node; a pod network may be let in). The decision is a pure function; Middleware is
// the shell.
package clientallow

import (
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"

	"github.com/shoal-p2p/shoal/lib/oci"
)

// Parse parses CIDR prefixes (e.g. 10.244.0.0/16); key names the config key in errors.
func Parse(key string, cidrs []string) ([]netip.Prefix, error) {
	var out []netip.Prefix
	var errs []error
	for i, c := range cidrs {
		p, err := netip.ParsePrefix(c)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s[%d]: %q is not a CIDR prefix (use e.g. 10.244.0.0/16)", key, i, c))
			continue
		}
		out = append(out, p.Masked())
	}
	return out, errors.Join(errs...)
}

// Allowed reports whether a caller at remoteAddr (host:port, as net/http gives it) is
// admitted: loopback always, else only inside one of prefixes.
func Allowed(remoteAddr string, prefixes []netip.Prefix) bool {
	host, _, err := net.SplitHostPort(remoteAddr)
	if err != nil {
		host = remoteAddr
	}
	addr, err := netip.ParseAddr(host)
	if err != nil {
		return false
	}
	addr = addr.Unmap()
	if addr.IsLoopback() {
		return true
	}
	for _, p := range prefixes {
		if p.Contains(addr) {
			return true
		}
	}
	return false
}

// Middleware answers a caller Allowed refuses with 403 DENIED naming key, before
// anything else runs.
func Middleware(key string, prefixes []netip.Prefix) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if Allowed(r.RemoteAddr, prefixes) {
				next.ServeHTTP(w, r)
				return
			}
			msg := fmt.Sprintf("callers from this address are not admitted (add its network to %s)", key)
			oci.WriteError(w, oci.NewError(oci.CodeDenied, msg, errors.New(msg)))
		})
	}
}
