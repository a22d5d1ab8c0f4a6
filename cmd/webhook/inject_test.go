package main

import (
	"bytes"
	"strings"
	"testing"
)

func TestInjectCommand(t *testing.T) {
	pod := `apiVersion: v1
kind: Pod
metadata:
  name: web
  namespace: demo
  annotations:
    token-projector.io/audience: vault
    token-projector.io/expiration: 3h
spec:
  containers:
  - name: app
    image: nginx
`
	for _, tc := range []struct {
		name    string
		args    []string
		wantOut []string
		wantErr string
	}{
		{name: "stdin", args: []string{"-f", "-"}, wantOut: []string{"name: token-projector", "path: vault-token", "expirationSeconds: 10800"}},
		{name: "policy flags apply", args: []string{"-f", "-", "--max-expiration", "2h"}, wantErr: "from 10m to 2h"},
		{name: "allowed audiences apply", args: []string{"-f", "-", "--allowed-audiences", "sts.*"}, wantErr: "audiences matching sts.*"},
		{name: "file required", args: nil, wantErr: "-f FILE"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var out bytes.Buffer
			err := injectCmd(tc.args, strings.NewReader(pod), &out)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			for _, w := range tc.wantOut {
				if !strings.Contains(out.String(), w) {
					t.Errorf("output lacks %q:\n%s", w, out.String())
				}
			}
		})
	}
}
