// Command devcluster runs a local Shoal cluster in the foreground until Ctrl-C
// (`make devcluster`): proxy at 127.0.0.1:15000, agents at 127.0.0.1:16000/17000/18000.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/shoal-p2p/shoal/test/cluster"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "devcluster:", err)
		os.Exit(1)
	}
}

func run() error {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	secure := os.Getenv("SECURE") == "1"
	c, err := cluster.Start(ctx, cluster.Options{Secure: secure})
	if err != nil {
		return err
	}
	defer c.Stop()
	fmt.Printf("Shoal devcluster up (state and logs in %s)\n", c.State)
	if s := c.Security; s != nil {
		fmt.Printf("  SECURED: every listener is https with mTLS between components; CA %s\n", s.CAFile)
		fmt.Printf("  push user %q, password %q (docker login %s)\n", s.User, s.Password, cluster.ProxyAddr)
	}
	fmt.Printf("  proxy (push here)   %s\n", cluster.ProxyAddr)
	fmt.Printf("  build-index         %s\n  trackers            %s, %s\n", cluster.BuildIndexAddr, cluster.TrackerAddr, cluster.Tracker2Addr)
	for _, o := range c.Origins {
		fmt.Printf("  %-19s %s (P2P %s:%d)\n", o.Name, o.Addr, o.PeerIP, o.PeerPort)
	}
	for _, a := range c.Agents {
		fmt.Printf("  %-19s %s (P2P %s:%d)\n", a.Name, a.Registry, a.PeerIP, a.PeerPort)
	}
	fmt.Printf("Try: crane push --insecure ... %s/demo/app:v1; crane pull --insecure %s/demo/app:v1 app.tar\n",
		cluster.ProxyAddr, c.Agents[0].Registry)
	fmt.Println("Ctrl-C stops the cluster.")
	// A process that exits is reported and the rest keep running, as in a real
	// cluster, so faults can be tried on it (kill an origin, stop the tracker).
	exited, alive := c.Exited(), c.Processes()
	for {
		select {
		case <-ctx.Done():
			return nil
		case msg := <-exited:
			alive--
			if alive == 0 {
				return fmt.Errorf("%s; every process has exited", msg)
			}
			fmt.Fprintf(os.Stderr, "devcluster: %s; %d processes keep running (Ctrl-C stops them)\n", msg, alive)
		}
	}
}
