// Package image builds the webhook's container image without a Docker
// daemon, reproducibly: the same binary and base give the same digest (fixed
// timestamps, sorted tar entries, no build host data). hack/image is its
// command line (make image, make image-push); test/cluster builds the
// images its pods run with it.
package image

import (
	"archive/tar"
	"bytes"
	"fmt"
	"io"
	"path"
	"slices"
	"strings"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
)

// Epoch is the time of every file and of every image this package builds:
// nothing of the build's own time may reach the digest.
var Epoch = time.Unix(0, 0).UTC()

// File is one entry of a layer. A Name ending in "/" is a directory.
type File struct {
	Name     string // relative to the image root, e.g. "etc/passwd" or "tmp/"
	Mode     int64
	UID, GID int
	Data     []byte
}

// Layer returns an uncompressed-tar layer of files, sorted by name, with
// every timestamp at Epoch and no user or group names, so that the same
// files always give the same digest. Missing parent directories are added
// (0755, root).
func Layer(files []File) (v1.Layer, error) {
	byName := map[string]File{}
	for _, f := range files {
		name := strings.TrimPrefix(f.Name, "/")
		if name == "" || strings.Contains(name, "..") {
			return nil, fmt.Errorf("image: bad file name %q", f.Name)
		}
		if _, dup := byName[name]; dup {
			return nil, fmt.Errorf("image: %s given twice", name)
		}
		f.Name = name
		byName[name] = f
		for dir := path.Dir(strings.TrimSuffix(name, "/")); dir != "."; dir = path.Dir(dir) {
			if _, ok := byName[dir+"/"]; !ok {
				byName[dir+"/"] = File{Name: dir + "/", Mode: 0o755}
			}
		}
	}
	names := make([]string, 0, len(byName))
	for n := range byName {
		names = append(names, n)
	}
	slices.Sort(names)

	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, n := range names {
		f := byName[n]
		h := &tar.Header{Name: n, Mode: f.Mode, Uid: f.UID, Gid: f.GID, ModTime: Epoch}
		if strings.HasSuffix(n, "/") {
			h.Typeflag = tar.TypeDir
		} else {
			h.Typeflag = tar.TypeReg
			h.Size = int64(len(f.Data))
		}
		if err := tw.WriteHeader(h); err != nil {
			return nil, err
		}
		if _, err := tw.Write(f.Data); err != nil {
			return nil, err
		}
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	data := buf.Bytes()
	return tarball.LayerFromOpener(func() (io.ReadCloser, error) {
		return io.NopCloser(bytes.NewReader(data)), nil
	})
}
