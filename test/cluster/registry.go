package cluster

import (
	"errors"
	"net"
	"net/http"
	"time"
)

// Registry is an OCI registry that the node's containerd pulls from, as a
// node pulls a release's images. Its handler is served at Addr inside the
// cluster's network namespace: a loopback address with a port other than
// 443, for which containerd speaks plain HTTP by itself (no hosts.toml, no
// TLS to configure), as it does for any registry on a node's loopback. The
// test serves the same handler on the host's loopback at the same port, so
// that one reference (127.0.0.1:<port>/...) names the image for helm, for
// the chart and for containerd.
type Registry struct {
	Addr    string
	Handler http.Handler
}

// registryServer serves a Registry inside the namespace until closed.
type registryServer struct {
	srv  *http.Server
	done chan error
}

func serveRegistry(ns *netns, r *Registry) (*registryServer, error) {
	ln, err := ns.listen("tcp", r.Addr)
	if err != nil {
		return nil, err
	}
	s := &registryServer{srv: &http.Server{Handler: r.Handler, ReadHeaderTimeout: 30 * time.Second}, done: make(chan error, 1)}
	go func() { s.done <- s.srv.Serve(ln) }()
	return s, nil
}

// close stops the server and cuts its connections.
func (s *registryServer) close() error {
	err := s.srv.Close()
	if serveErr := <-s.done; !errors.Is(serveErr, http.ErrServerClosed) {
		err = errors.Join(err, serveErr)
	}
	if errors.Is(err, net.ErrClosed) {
		return nil
	}
	return err
}
