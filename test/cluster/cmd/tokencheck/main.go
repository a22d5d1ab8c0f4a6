// Command tokencheck runs in test/cluster's pods as a non-root user. It
// reads the token the kubelet projected for token-projector's injected
// volume, then asks kube-apiserver (through the pod's in-cluster
// configuration, as the pod's ServiceAccount) for a token for its own
// account and for another one, and serves what it found as JSON on :8080
// for the test to judge. It judges nothing itself.
package main

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/token-projector/token-projector/test/cluster/tokencheck"
)

const apiAccess = "/var/run/secrets/kubernetes.io/serviceaccount"

func main() {
	tokenPath := flag.String("token", "/var/run/secrets/tokens/vault-token", "the projected token to read")
	other := flag.String("other-account", "someone-else", "an account the pod must not get tokens for")
	addr := flag.String("listen", fmt.Sprintf(":%d", tokencheck.Port), "where to serve the report")
	env := flag.String("token-env", "", "comma-separated environment variables naming a token file: read each and compare it with -token")
	flag.Parse()

	r := tokencheck.Report{UID: os.Getuid(), GID: os.Getgid(), OtherAccount: *other}
	if st, err := os.Stat(*tokenPath); err == nil {
		r.FileMode = st.Mode().Perm().String()
		if sys, ok := st.Sys().(*syscall.Stat_t); ok {
			r.FileUID = int(sys.Uid)
		}
	}
	if b, err := os.ReadFile(*tokenPath); err != nil {
		r.TokenError = err.Error()
	} else {
		r.Token = strings.TrimSpace(string(b))
	}
	if *env != "" {
		for name := range strings.SplitSeq(*env, ",") {
			r.Env = append(r.Env, followEnv(&r, name))
		}
	}
	if err := requestTokens(&r); err != nil {
		r.RequestError = err.Error()
	}
	body, _ := json.Marshal(r)

	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	srv := &http.Server{ReadHeaderTimeout: 5 * time.Second, Handler: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(body)
	})}
	go func() { _ = srv.Serve(ln) }()
	stop := make(chan os.Signal, 1)
	signal.Notify(stop, syscall.SIGTERM, syscall.SIGINT)
	<-stop
	_ = srv.Close()
}

// requestTokens creates a TokenRequest for the pod's own account and one
// for r.OtherAccount, with the pod's API credentials.
func requestTokens(r *tokencheck.Report) error {
	token, err := os.ReadFile(apiAccess + "/token")
	if err != nil {
		return err
	}
	ns, err := os.ReadFile(apiAccess + "/namespace")
	if err != nil {
		return err
	}
	ca, err := os.ReadFile(apiAccess + "/ca.crt")
	if err != nil {
		return err
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(ca)
	if r.ServiceAccount, err = account(string(token)); err != nil {
		return err
	}
	client := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}}}
	host := net.JoinHostPort(os.Getenv("KUBERNETES_SERVICE_HOST"), os.Getenv("KUBERNETES_SERVICE_PORT"))
	create := func(sa string) (int, error) {
		url := fmt.Sprintf("https://%s/api/v1/namespaces/%s/serviceaccounts/%s/token", host, strings.TrimSpace(string(ns)), sa)
		body := []byte(`{"apiVersion":"authentication.k8s.io/v1","kind":"TokenRequest","spec":{"audiences":["vault"],"expirationSeconds":600}}`)
		req, err := http.NewRequest(http.MethodPost, url, bytes.NewReader(body))
		if err != nil {
			return 0, err
		}
		req.Header.Set("Authorization", "Bearer "+strings.TrimSpace(string(token)))
		req.Header.Set("Content-Type", "application/json")
		resp, err := client.Do(req)
		if err != nil {
			return 0, err
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		_ = resp.Body.Close()
		return resp.StatusCode, nil
	}
	if r.SelfStatus, err = create(r.ServiceAccount); err != nil {
		return err
	}
	r.OtherStatus, err = create(r.OtherAccount)
	return err
}

// account is the ServiceAccount name in a ServiceAccount token's subject
// (system:serviceaccount:<namespace>:<name>), read without verification:
// the API server verifies it on every request.
func account(jwt string) (string, error) {
	parts := strings.Split(strings.TrimSpace(jwt), ".")
	if len(parts) != 3 {
		return "", fmt.Errorf("the API access token is not a JWT")
	}
	payload, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		return "", err
	}
	var claims struct{ Sub string }
	if err := json.Unmarshal(payload, &claims); err != nil {
		return "", err
	}
	fields := strings.Split(claims.Sub, ":")
	if len(fields) != 4 || fields[0] != "system" || fields[1] != "serviceaccount" {
		return "", fmt.Errorf("unexpected subject %q", claims.Sub)
	}
	return fields[3], nil
}

// followEnv reads the token file the environment variable name names, as an
// SDK that reads such a variable does, and says whether it is the projected
// token read from -token.
func followEnv(r *tokencheck.Report, name string) tokencheck.EnvCheck {
	c := tokencheck.EnvCheck{Name: name}
	value, ok := os.LookupEnv(name)
	if !ok {
		c.Error = name + " is not set"
		return c
	}
	c.Value = value
	b, err := os.ReadFile(value)
	if err != nil {
		c.Error = err.Error()
		return c
	}
	c.SameToken = r.Token != "" && strings.TrimSpace(string(b)) == r.Token
	return c
}
