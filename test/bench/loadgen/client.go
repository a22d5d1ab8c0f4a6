// Package loadgen drives an admission webhook the way kube-apiserver does:
// POSTs of AdmissionReview bodies over TLS with keep-alive, over HTTP/2 (one
// multiplexed connection, as kube-apiserver uses) or HTTP/1.1 (a connection
// per concurrent request), from a closed loop of workers bounded in time and
// in count. It checks every answer: status, protocol, the UID echoed, and
// what the caller expects of the response.
package loadgen

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"net/http"
	"time"
)

// Protocol is the HTTP version a client speaks.
type Protocol string

// The protocols a webhook is measured over.
const (
	HTTP2 Protocol = "h2"
	HTTP1 Protocol = "http/1.1"
)

// Major is the HTTP major version of the protocol.
func (p Protocol) Major() int {
	if p == HTTP2 {
		return 2
	}
	return 1
}

// NewClient returns a client that trusts caPEM only, speaks exactly proto and
// keeps up to conns connections alive, so that no request of a measured run
// pays a TLS handshake.
func NewClient(proto Protocol, caPEM []byte, conns int) (*http.Client, error) {
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(caPEM) {
		return nil, errors.New("no CA certificate in the PEM given")
	}
	protocols := new(http.Protocols)
	switch proto {
	case HTTP2:
		protocols.SetHTTP2(true)
	case HTTP1:
		protocols.SetHTTP1(true)
	default:
		return nil, errors.New("unknown protocol " + string(proto))
	}
	tr := &http.Transport{
		TLSClientConfig:     &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12},
		Protocols:           protocols,
		MaxIdleConns:        2 * conns,
		MaxIdleConnsPerHost: 2 * conns,
		IdleConnTimeout:     90 * time.Second,
	}
	return &http.Client{Transport: tr, Timeout: 15 * time.Second}, nil
}
