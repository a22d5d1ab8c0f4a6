package faults

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"sync/atomic"
	"time"
)

// ca is a throwaway certificate authority.
type ca struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	pem  []byte
}

var serial atomic.Int64

func newCA(name string) (*ca, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(serial.Add(1)), Subject: pkix.Name{CommonName: name},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, err
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, err
	}
	return &ca{cert: cert, key: key, pem: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})}, nil
}

// issued is a certificate and key in PEM, with its serial number.
type issued struct {
	certPEM, keyPEM []byte
	serial          *big.Int
}

// serving issues a serving certificate for 127.0.0.1.
func (c *ca) serving() (issued, error) {
	return c.issue("webhook", x509.ExtKeyUsageServerAuth, []net.IP{net.ParseIP("127.0.0.1")})
}

// client issues a client certificate.
func (c *ca) client(name string) (issued, error) {
	return c.issue(name, x509.ExtKeyUsageClientAuth, nil)
}

func (c *ca) issue(name string, usage x509.ExtKeyUsage, ips []net.IP) (issued, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return issued{}, err
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(serial.Add(1)), Subject: pkix.Name{CommonName: name},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{usage}, IPAddresses: ips,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, c.cert, &key.PublicKey, c.key)
	if err != nil {
		return issued{}, err
	}
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		return issued{}, err
	}
	return issued{
		certPEM: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		keyPEM:  pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER}),
		serial:  tmpl.SerialNumber,
	}, nil
}

func (i issued) tlsCertificate() (tls.Certificate, error) {
	return tls.X509KeyPair(i.certPEM, i.keyPEM)
}

// certDir is a directory of tls.crt and tls.key written the way the kubelet
// updates a Secret volume (which is how cert-manager's renewals reach the
// webhook): the files are symlinks through ..data, which is swapped
// atomically to a new timestamped directory.
type certDir struct {
	dir string
	gen int
}

func newCertDir(dir string, first issued) (*certDir, error) {
	d := &certDir{dir: dir}
	if err := d.swap(first); err != nil {
		return nil, err
	}
	for _, f := range []string{"tls.crt", "tls.key"} {
		if err := os.Symlink(filepath.Join("..data", f), filepath.Join(dir, f)); err != nil {
			return nil, err
		}
	}
	return d, nil
}

// swap writes the pair into a fresh directory and points ..data at it in
// one rename, then removes the previous directory.
func (d *certDir) swap(c issued) error {
	d.gen++
	gen := fmt.Sprintf("..gen-%d", d.gen)
	if err := os.Mkdir(filepath.Join(d.dir, gen), 0o755); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(d.dir, gen, "tls.crt"), c.certPEM, 0o644); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(d.dir, gen, "tls.key"), c.keyPEM, 0o600); err != nil {
		return err
	}
	tmp := filepath.Join(d.dir, "..data_tmp")
	if err := os.Symlink(gen, tmp); err != nil {
		return err
	}
	if err := os.Rename(tmp, filepath.Join(d.dir, "..data")); err != nil {
		return err
	}
	if d.gen > 1 {
		return os.RemoveAll(filepath.Join(d.dir, fmt.Sprintf("..gen-%d", d.gen-1)))
	}
	return nil
}

// overwrite rewrites the current files in place, certificate first, as a
// naive writer would: for a moment the pair does not match.
func (d *certDir) overwrite(c issued) error {
	gen := filepath.Join(d.dir, fmt.Sprintf("..gen-%d", d.gen))
	if err := os.WriteFile(filepath.Join(gen, "tls.crt"), c.certPEM, 0o644); err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(gen, "tls.key"), c.keyPEM, 0o600)
}
