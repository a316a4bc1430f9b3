package blockstore

import "testing"

// Virtual-host addressing cannot work for IP or localhost endpoints, so
// those get path-style addressing without any flag.
func TestNeedsPathStyle(t *testing.T) {
	cases := map[string]bool{
		"":                                   false, // AWS itself
		"https://s3.eu-west-1.amazonaws.com": false,
		"https://minio.example.com:9000":     false,
		"http://127.0.0.1:9000":              true,
		"http://[::1]:9000":                  true,
		"http://10.1.2.3":                    true,
		"http://localhost:9000":              true,
		"http://minio.localhost":             true,
		"not a url":                          false,
	}
	for endpoint, want := range cases {
		if got := needsPathStyle(endpoint); got != want {
			t.Errorf("needsPathStyle(%q) = %v, want %v", endpoint, got, want)
		}
	}
}
