package main

import "testing"

func TestExampleConfigsLoad(t *testing.T) {
	for _, p := range []string{"../config/agent.yaml", "../config/devcluster/agent.yaml"} {
		if _, err := loadConfig([]string{"--config", p}); err != nil {
			t.Errorf("%s: %v", p, err)
		}
	}
}

func TestMirrorURL(t *testing.T) {
	for _, tc := range []struct{ listen, explicit, want string }{
		{"127.0.0.1:16000", "", "http://127.0.0.1:16000"},
		{"0.0.0.0:16000", "", "http://127.0.0.1:16000"},
		{":16000", "", "http://127.0.0.1:16000"},
		{"[::]:16000", "", "http://127.0.0.1:16000"},
		{"10.0.0.5:16000", "", "http://10.0.0.5:16000"},
		{"0.0.0.0:16000", "http://agent.local:16000/", "http://agent.local:16000"},
	} {
		c := DefaultConfig()
		c.Listen, c.Mirror.Containerd.MirrorURL = tc.listen, tc.explicit
		if got := c.MirrorURL(); got != tc.want {
			t.Errorf("MirrorURL(listen %q, mirror_url %q) = %q, want %q", tc.listen, tc.explicit, got, tc.want)
		}
	}
}
