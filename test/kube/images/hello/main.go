// hello is a tiny HTTP server used as the smoke-test workload: it answers
// GET / with the pod and node names it was given through the environment.
//
// It is also the smoke test's probe, run through `kubectl exec POD -- /entry ...` inside
// a pod (the image has no shell or DNS tools) or directly on the host:
//
//	/entry lookup NAME...   resolve each NAME (Go's resolver: /etc/resolv.conf, search, ndots)
//	                        and print "NAME IP IP ..." sorted, or "NAME ERROR ..." and exit 1
//	/entry reverse IP...    reverse-resolve each IP: "IP NAME ..." or "IP ERROR ..." and exit 1
//	/entry get URL          print the body of GET URL, or exit 1
//
// DNS_SERVER=host:port makes lookup and get ask that server instead of resolv.conf's
// (the smoke test points it at CoreDNS from the host).
package main

import (
	"context"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"os"
	"sort"
	"strings"
	"time"
)

func resolver() *net.Resolver {
	server := os.Getenv("DNS_SERVER")
	if server == "" {
		return net.DefaultResolver
	}
	return &net.Resolver{PreferGo: true, Dial: func(ctx context.Context, network, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, network, server)
	}}
}

// via notes the server really asked: with DNS_SERVER set, Go's error text still names
// resolv.conf's server, since the Dial above only redirects the connection.
func via() string {
	if s := os.Getenv("DNS_SERVER"); s != "" {
		return " (asked DNS_SERVER=" + s + ")"
	}
	return ""
}

func lookup(names []string) int {
	rc := 0
	for _, name := range names {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		ips, err := resolver().LookupHost(ctx, name)
		cancel()
		if err != nil {
			fmt.Printf("%s ERROR %v%s\n", name, err, via())
			rc = 1
			continue
		}
		sort.Strings(ips)
		fmt.Printf("%s %s\n", name, strings.Join(ips, " "))
	}
	return rc
}

func reverse(ips []string) int {
	rc := 0
	for _, ip := range ips {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		names, err := resolver().LookupAddr(ctx, ip)
		cancel()
		if err != nil {
			fmt.Printf("%s ERROR %v%s\n", ip, err, via())
			rc = 1
			continue
		}
		sort.Strings(names)
		fmt.Printf("%s %s\n", ip, strings.Join(names, " "))
	}
	return rc
}

func get(url string) int {
	tr := &http.Transport{DialContext: (&net.Dialer{Timeout: 5 * time.Second, Resolver: resolver()}).DialContext}
	c := &http.Client{Timeout: 10 * time.Second, Transport: tr}
	resp, err := c.Get(url)
	if err != nil {
		fmt.Println("ERROR", err)
		return 1
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	fmt.Print(string(body))
	if resp.StatusCode != http.StatusOK {
		fmt.Println("ERROR status", resp.Status)
		return 1
	}
	return 0
}

func main() {
	if len(os.Args) > 2 && os.Args[1] == "lookup" {
		os.Exit(lookup(os.Args[2:]))
	}
	if len(os.Args) > 2 && os.Args[1] == "reverse" {
		os.Exit(reverse(os.Args[2:]))
	}
	if len(os.Args) == 3 && os.Args[1] == "get" {
		os.Exit(get(os.Args[2]))
	}
	addr := os.Getenv("LISTEN")
	if addr == "" {
		addr = ":28080"
	}
	http.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "hello from pod=%s node=%s\n", os.Getenv("POD_NAME"), os.Getenv("NODE_NAME"))
	})
	http.HandleFunc("/healthz", func(w http.ResponseWriter, r *http.Request) { fmt.Fprintln(w, "ok") })
	log.Printf("listening on %s", addr)
	log.Fatal(http.ListenAndServe(addr, nil))
}
