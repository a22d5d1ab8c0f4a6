package release

import (
	"archive/tar"
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"regexp"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"sigs.k8s.io/yaml"
)

// The media types of a Helm chart in an OCI registry (helm push writes
// and helm pull reads these).
const (
	ChartConfigMediaType types.MediaType = "application/vnd.cncf.helm.config.v1+json"
	ChartLayerMediaType  types.MediaType = "application/vnd.cncf.helm.chart.content.v1.tar+gzip"
)

// imageBlock is the image: block of the chart's values.yaml; its
// repository and digest lines are rewritten at packaging time.
var (
	imageRepository = regexp.MustCompile(`(?m)^(image:\n(?:  .*\n|\n)*?  repository: ).*$`)
	imageDigest     = regexp.MustCompile(`(?m)^(image:\n(?:  .*\n|\n)*?  digest: ).*$`)
)

// PackageChart packages the chart in dir with helm, as version (for both
// version and appVersion), its values naming the image repo@digest, into
// out, and returns the package's path. The working tree's chart is copied
// first, not changed.
func PackageChart(ctx context.Context, helm, dir, version, repo, digest, out string) (string, error) {
	tmp, err := os.MkdirTemp("", "token-projector-chart-")
	if err != nil {
		return "", err
	}
	defer func() { _ = os.RemoveAll(tmp) }()
	chart := filepath.Join(tmp, filepath.Base(dir))
	if err := os.CopyFS(chart, os.DirFS(dir)); err != nil {
		return "", fmt.Errorf("copying the chart: %w", err)
	}
	values := filepath.Join(chart, "values.yaml")
	b, err := os.ReadFile(values)
	if err != nil {
		return "", err
	}
	if !imageRepository.Match(b) || !imageDigest.Match(b) {
		return "", errors.New("the chart's values.yaml has no image.repository or image.digest line to set")
	}
	b = imageRepository.ReplaceAll(b, []byte("${1}"+repo))
	b = imageDigest.ReplaceAll(b, []byte(`${1}"`+digest+`"`))
	if err := os.WriteFile(values, b, 0o644); err != nil {
		return "", err
	}
	if err := os.MkdirAll(out, 0o755); err != nil {
		return "", err
	}
	cmd := exec.CommandContext(ctx, helm, "package", chart, "--version", version, "--app-version", version, "--destination", out)
	if b, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("helm package: %w\n%s", err, b)
	}
	return filepath.Join(out, filepath.Base(dir)+"-"+version+".tgz"), nil
}

// ChartArtifact is the OCI artifact of a packaged chart, as helm push
// makes it: its Chart.yaml as JSON in the configuration, the package as
// the one layer.
func ChartArtifact(pkg string, created time.Time) (Artifact, error) {
	data, err := os.ReadFile(pkg)
	if err != nil {
		return Artifact{}, err
	}
	meta, err := chartYAML(pkg)
	if err != nil {
		return Artifact{}, err
	}
	config, err := yaml.YAMLToJSON(meta)
	if err != nil {
		return Artifact{}, fmt.Errorf("%s: Chart.yaml: %w", pkg, err)
	}
	var m struct{ Name, Version, Description string }
	if err := yaml.Unmarshal(meta, &m); err != nil {
		return Artifact{}, err
	}
	return Artifact{
		Config: Blob{MediaType: ChartConfigMediaType, Data: config},
		Layers: []Blob{{MediaType: ChartLayerMediaType, Data: data}},
		Annotations: map[string]string{
			"org.opencontainers.image.title":       m.Name,
			"org.opencontainers.image.version":     m.Version,
			"org.opencontainers.image.description": m.Description,
			"org.opencontainers.image.created":     created.UTC().Format(time.RFC3339),
		},
	}, nil
}

// chartYAML reads <chart>/Chart.yaml from a chart package.
func chartYAML(pkg string) ([]byte, error) {
	f, err := os.Open(pkg)
	if err != nil {
		return nil, err
	}
	defer func() { _ = f.Close() }()
	zr, err := gzip.NewReader(f)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", pkg, err)
	}
	tr := tar.NewReader(zr)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return nil, fmt.Errorf("%s has no Chart.yaml", pkg)
		}
		if err != nil {
			return nil, fmt.Errorf("%s: %w", pkg, err)
		}
		// The chart's own, not a subchart's: <chart>/Chart.yaml.
		if strings.Count(h.Name, "/") == 1 && path.Base(h.Name) == "Chart.yaml" {
			return io.ReadAll(tr)
		}
	}
}

// ChartRepository is where a release's chart goes: REGISTRY/charts/<name>.
func ChartRepository(registry, chart string) (name.Repository, error) {
	return name.NewRepository(registry + "/charts/" + chart)
}
