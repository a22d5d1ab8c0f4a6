package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"k8s.io/apimachinery/pkg/types"

	"github.com/token-projector/token-projector/test/bench/loadgen"
)

// profiles takes a CPU profile of the webhook and of the ceiling under the
// warm load of the headline figures (HTTP/1.1, concurrency 64) and prints
// what dominates each: pprof's top entries and the share of the stages an
// admission passes through.
func (b *bench) profiles(ctx context.Context, bodies [][]byte, uids []types.UID) error {
	fmt.Printf("== CPU profiles: warm path, HTTP/1.1 (the default), concurrency 64, %s each (files in %s) ==\n", b.c.profile, b.c.outDir)
	for _, s := range []*server{b.webhook, b.ceiling} {
		expect := expectPatch
		if s == b.ceiling {
			expect = expectNoPatch
		}
		t, err := b.target(s.name, s.url, loadgen.HTTP1, bodies, uids, expect)
		if err != nil {
			return err
		}
		file := filepath.Join(b.c.outDir, s.name+".cpu.pprof")
		if err := profileUnderLoad(ctx, s, t, b.c.profile, file); err != nil {
			return err
		}
		top, err := pprofTop(file, "-top", "-nodecount=18")
		if err != nil {
			return err
		}
		fmt.Printf("\n-- %s: go tool pprof -top %s\n%s", s.name, filepath.Base(file), top)
		cum, err := pprofTop(file, "-top", "-cum", "-nodecount=2000")
		if err != nil {
			return err
		}
		fmt.Printf("-- %s: cumulative share of the stages of an admission\n", s.name)
		for _, st := range stages {
			if share, ok := cumShare(cum, st.function); ok {
				fmt.Printf("   %5.1f%%  %s\n", share, st.label)
			}
		}
	}
	fmt.Println()
	return nil
}

// stages are the functions whose cumulative share says where an
// admission's CPU goes, by their full names as pprof prints them.
var stages = []struct{ label, function string }{
	{"TLS: reading and decrypting", "crypto/tls.(*Conn).Read"},
	{"TLS: encrypting and writing", "crypto/tls.(*Conn).Write"},
	{"HTTP/2 server frame loop", "net/http.(*http2serverConn).serve"},
	{"net/http connection goroutine (TLS handshake; HTTP/1.1 requests, HTTP/2 runs under it)", "net/http.(*conn).serve"},
	{"Lean ServeHTTP (all below)", "github.com/token-projector/token-projector/pkg/admission.(*leanWebhook).ServeHTTP"},
	{"  review read (pooled buffer)", "github.com/token-projector/token-projector/pkg/admission.readBody"},
	{"  review decode (one pass, or the framework's deserializer)", "github.com/token-projector/token-projector/pkg/admission.decodeReview"},
	{"  universal deserializer (AdmissionReview, not plain JSON)", "k8s.io/apimachinery/pkg/runtime/serializer/json.(*Serializer).Decode"},
	{"  controller-runtime admission.Webhook.Handle (logger, panic recovery, Complete)", "sigs.k8s.io/controller-runtime/pkg/webhook/admission.(*Webhook).Handle"},
	{"  patch encode", "github.com/token-projector/token-projector/pkg/admission.encodePatch"},
	{"  JSON decode, one pass (encoding/json/v2's implementation)", "github.com/go-json-experiment/json.Unmarshal"},
	{"  JSON decode (sigs.k8s.io/json, case-sensitive)", "sigs.k8s.io/json.UnmarshalCaseSensitivePreserveInts"},
	{"  patch marshal (Response.Complete)", "sigs.k8s.io/controller-runtime/pkg/webhook/admission.(*Response).Complete"},
	{"  encoding/json Encode (the answer and its write; the patch's struct values)", "encoding/json.(*Encoder).Encode"},
	{"PodHandler.Handle", "github.com/token-projector/token-projector/pkg/admission.(*PodHandler).Handle"},
	{"  mutate.Mutate (parse annotations, plan)", "github.com/token-projector/token-projector/pkg/mutate.Mutate"},
	{"  Ensurer (cache lookups)", "github.com/token-projector/token-projector/pkg/rbac.(*Ensurer).Ensure"},
	{"  informer cache Get", "sigs.k8s.io/controller-runtime/pkg/cache.(*informerCache).Get"},
	{"  log line and metric per admission", "github.com/token-projector/token-projector/pkg/admission.(*PodHandler).record"},
	{"ceiling handler (decode review, encode answer)", "github.com/token-projector/token-projector/test/bench/ceiling.Handler.func1"},
	{"  encoding/json Decoder.Decode", "encoding/json.(*Decoder).Decode"},
	{"garbage collection (background mark)", "runtime.gcBgMarkWorker"},
	{"allocation (mallocgc)", "runtime.mallocgc"},
	{"syscalls", "internal/runtime/syscall/linux.Syscall6"},
}

func profileUnderLoad(ctx context.Context, s *server, t loadgen.Target, d time.Duration, file string) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	loaded := make(chan error, 1)
	go func() {
		_, err := loadgen.Run(ctx, t, loadgen.Load{Concurrency: 64, Duration: d + 3*time.Second})
		loaded <- err
	}()
	time.Sleep(time.Second) // load on before the profile starts
	url := fmt.Sprintf("%s/profile?seconds=%d", s.pprof, int(d.Seconds()))
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return err
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s: %s %s", url, resp.Status, body)
	}
	cancel()
	if err := <-loaded; err != nil {
		return err
	}
	return os.WriteFile(file, body, 0o644)
}

func pprofTop(file string, args ...string) (string, error) {
	cmd := exec.Command("go", append(append([]string{"tool", "pprof"}, args...), file)...)
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("go tool pprof: %w: %s", err, errOut.String())
	}
	return out.String(), nil
}

// cumShare finds function in pprof -top -cum output and returns its cum%.
func cumShare(top, function string) (float64, bool) {
	for line := range strings.SplitSeq(top, "\n") {
		f := strings.Fields(line)
		if len(f) < 6 || f[5] != function {
			continue
		}
		v, err := strconv.ParseFloat(strings.TrimSuffix(f[4], "%"), 64)
		if err == nil {
			return v, true
		}
	}
	return 0, false
}
