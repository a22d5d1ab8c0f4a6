package cluster_test

import (
	"context"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	tprelease "github.com/token-projector/token-projector/internal/release"
	"github.com/token-projector/token-projector/test/publish"
	"github.com/token-projector/token-projector/test/render"
)

// The two releases of the working tree the tier publishes: it installs the
// first, as an admin installs a release, and upgrades to the second.
const (
	firstVersion  = "v0.0.1-cluster.1"
	secondVersion = "v0.0.1-cluster.2"
)

// releases are the two releases, published as make release publishes
// (multi-arch index, SBOMs, signatures, the chart naming the index by
// digest, pushed last) into one registry, served at the same
// 127.0.0.1:<port> on the host (for helm) and inside the cluster's network
// namespace (for containerd).
type releases struct {
	handler       http.Handler
	registry      string // host:port
	chart         string // the chart's reference, as docs/install.md gives it
	first, second *tprelease.Result
	pulls         pulls
}

// publishReleases releases the working tree twice and checks, as an admin
// does before installing (docs/install.md), that the images and charts
// verify with the release key.
func publishReleases(t *testing.T, root string) *releases {
	t.Helper()
	helm, err := render.Helm(root)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	r := &releases{handler: publish.NewRegistry()}
	r.registry = publish.Serve(t, r.handler)
	p := publish.NewPublisher(t, root, helm, r.registry+"/tp")
	r.chart = p.Chart(t)
	began := time.Now()
	r.first = p.Release(ctx, t, firstVersion)
	r.second = p.Release(ctx, t, secondVersion)
	v := p.Verifier(t)
	for _, d := range []name.Digest{r.first.Index, r.first.Chart, r.second.Index, r.second.Chart} {
		if err := tprelease.Verify(ctx, d, v); err != nil {
			t.Fatal(err)
		}
	}
	if r.first.Index.DigestStr() == r.second.Index.DigestStr() {
		t.Fatalf("both releases name the image %s: an upgrade between them would replace no pod", r.first.Index)
	}
	t.Logf("cluster: released %s and %s into %s in %v", firstVersion, secondVersion, r.registry, time.Since(began).Round(100*time.Millisecond))
	return r
}

// pulls records the manifests the registry served inside the cluster's
// namespace: only containerd pulls there.
type pulls struct {
	mu    sync.Mutex
	paths []string
}

func (p *pulls) record(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodGet && strings.Contains(r.URL.Path, "/manifests/") {
			p.mu.Lock()
			p.paths = append(p.paths, r.URL.Path)
			p.mu.Unlock()
		}
		h.ServeHTTP(w, r)
	})
}

func (p *pulls) served(path string) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return slices.Contains(p.paths, path)
}

// checkRunsRelease: the webhook's Deployment names res's image index by
// digest, every webhook pod runs it, and containerd pulled that index from
// the registry inside the namespace (no archive holds it).
func (e *env) checkRunsRelease(t *testing.T, res *tprelease.Result) {
	t.Helper()
	d, err := e.Client.AppsV1().Deployments(releaseNS).Get(e.ctx, release, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if got := d.Spec.Template.Spec.Containers[0].Image; got != res.Index.String() {
		t.Fatalf("the webhook's Deployment runs %s, want the release's index %s", got, res.Index)
	}
	for _, p := range e.webhookPods(t) {
		for _, s := range p.Status.ContainerStatuses {
			if !strings.HasSuffix(s.ImageID, "@"+res.Index.DigestStr()) {
				t.Errorf("webhook pod %s container %s runs image %q, want %s", p.Name, s.Name, s.ImageID, res.Index.DigestStr())
			}
		}
	}
	manifest := "/v2/" + res.Index.RepositoryStr() + "/manifests/" + res.Index.DigestStr()
	if !e.pub.pulls.served(manifest) {
		t.Errorf("containerd never fetched %s from the registry inside the namespace", manifest)
	}
}
