package release

import (
	"io"
	"log"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/registry"
)

// serveRegistry serves an OCI registry on 127.0.0.1 for the test and
// returns its host:port (plain HTTP, which go-containerregistry uses for
// loopback by itself and helm with --plain-http).
func serveRegistry(t *testing.T) string {
	t.Helper()
	srv := httptest.NewServer(registry.New(registry.Logger(log.New(io.Discard, "", 0))))
	t.Cleanup(srv.Close)
	return strings.TrimPrefix(srv.URL, "http://")
}
