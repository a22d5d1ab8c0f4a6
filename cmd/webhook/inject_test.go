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
	// The pod asking for VAULT_TOKEN_FILE; with env, its container sets it.
	withEnv := func(env string) string {
		return strings.Replace(pod, "    token-projector.io/expiration: 3h\n",
			"    token-projector.io/expiration: 3h\n    token-projector.io/token-file-env: vault=VAULT_TOKEN_FILE\n", 1) + env
	}
	// The pod asking for audience aud.
	withAudience := func(aud string) string {
		return strings.Replace(pod, "token-projector.io/audience: vault\n", "token-projector.io/audience: "+aud+"\n", 1)
	}
	const escapedQuery = `--allowed-audiences=vault,https://sts.example.com/aws\?region=eu`
	for _, tc := range []struct {
		name    string
		in      string // pod if empty
		args    []string
		wantOut []string
		wantErr string
	}{
		{name: "stdin", args: []string{"-f", "-"}, wantOut: []string{"name: token-projector", "path: vault-token", "expirationSeconds: 10800"}},
		{name: "policy flags apply", args: []string{"-f", "-", "--max-expiration", "2h"}, wantErr: "from 10m to 2h"},
		{name: "allowed audiences apply", args: []string{"-f", "-", "--allowed-audiences", "sts.*"}, wantErr: "audiences matching sts.*"},
		{name: "file required", args: nil, wantErr: "-f FILE"},
		{name: "escaped '?' allows the audience it spells", in: withAudience("https://sts.example.com/aws?region=eu"), args: []string{"-f", "-", escapedQuery},
			wantOut: []string{"audience: https://sts.example.com/aws?region=eu"}},
		{name: "escaped '?' allows no other character", in: withAudience("https://sts.example.com/awsXregion=eu"), args: []string{"-f", "-", escapedQuery},
			wantErr: `token-projector.io/audience: "https://sts.example.com/awsXregion=eu" is not accepted: audiences matching vault, https://sts.example.com/aws\?region=eu`},
		{name: "token-file variable", in: withEnv(""), args: []string{"-f", "-"},
			wantOut: []string{"- name: VAULT_TOKEN_FILE\n      value: /var/run/secrets/tokens/vault-token\n", `"tokenFileEnv":{"VAULT_TOKEN_FILE":"vault"}`}},
		{name: "token-file variable the container sets otherwise", in: withEnv("    env:\n    - {name: VAULT_TOKEN_FILE, value: /x}\n"), args: []string{"-f", "-"},
			wantErr: `<stdin>: document 1 (Pod web): token-projector.io/token-file-env: "vault=VAULT_TOKEN_FILE" is not accepted: container "app" already sets VAULT_TOKEN_FILE to "/x"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var out bytes.Buffer
			in := tc.in
			if in == "" {
				in = pod
			}
			err := injectCmd(tc.args, strings.NewReader(in), &out)
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
