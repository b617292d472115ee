package test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"net/http"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"
)

// pki is a throwaway CA with a server and a client certificate.
type pki struct {
	caPEM                    []byte
	ca                       *x509.Certificate
	caKey                    *ecdsa.PrivateKey
	serverCert, serverKey    []byte
	clientCert, clientKey    []byte
	serverSerial, nextSerial int64
}

func newPKI(t *testing.T) *pki {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "keyward test CA"}, IsCA: true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageCertSign, NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	ca, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	p := &pki{caPEM: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), ca: ca, caKey: key, nextSerial: 10}
	p.serverCert, p.serverKey, p.serverSerial = p.issue(t, true)
	p.clientCert, p.clientKey, _ = p.issue(t, false)
	return p
}

func (p *pki) issue(t *testing.T, server bool) (certPEM, keyPEM []byte, serial int64) {
	t.Helper()
	p.nextSerial++
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(p.nextSerial), Subject: pkix.Name{CommonName: "client"}, NotBefore: time.Now().Add(-time.Hour),
		NotAfter: time.Now().Add(time.Hour), KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}
	if server {
		tmpl.Subject.CommonName = "127.0.0.1"
		tmpl.IPAddresses = []net.IP{net.ParseIP("127.0.0.1")}
		tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, p.ca, &key.PublicKey, p.caKey)
	if err != nil {
		t.Fatal(err)
	}
	kb, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kb}), p.nextSerial
}

func TestServeTLSClientCertAndReload(t *testing.T) {
	c, _ := newServedCLI(t)
	p := newPKI(t)
	certFile, keyFile := c.writeFile("server.pem", string(p.serverCert)), c.writeFile("server.key", string(p.serverKey))
	caFile := c.writeFile("ca.pem", string(p.caPEM))
	s := c.serve([]string{"KEYWARD_TLS_CERT=" + certFile, "KEYWARD_TLS_KEY=" + keyFile}, "--client-ca", caFile)
	if !strings.HasPrefix(s.url, "https://127.0.0.1:") {
		t.Fatalf("ready line names %q", s.url)
	}
	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM(p.caPEM) {
		t.Fatal("the test CA does not parse")
	}
	clientPair, err := tls.X509KeyPair(p.clientCert, p.clientKey)
	if err != nil {
		t.Fatal(err)
	}
	get := func(cfg *tls.Config) (*http.Response, error) {
		cl := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: cfg, DisableKeepAlives: true}}
		return cl.Get(s.url + "/healthz")
	}
	if _, err := get(&tls.Config{RootCAs: roots}); err == nil {
		t.Fatal("a client without a certificate was served")
	}
	if _, err := get(&tls.Config{RootCAs: roots, Certificates: []tls.Certificate{clientPair}, MaxVersion: tls.VersionTLS11}); err == nil {
		t.Fatal("TLS 1.1 was accepted")
	}
	cbc := []uint16{tls.TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA, tls.TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA, tls.TLS_RSA_WITH_AES_128_GCM_SHA256}
	if _, err := get(&tls.Config{RootCAs: roots, Certificates: []tls.Certificate{clientPair}, MaxVersion: tls.VersionTLS12, CipherSuites: cbc}); err == nil {
		t.Fatal("TLS 1.2 with CBC-SHA1 (or without forward secrecy) was accepted")
	}
	if resp, err := get(&tls.Config{RootCAs: roots, Certificates: []tls.Certificate{clientPair}, MaxVersion: tls.VersionTLS12}); err != nil {
		t.Fatalf("TLS 1.2 with its AEAD suites refused: %v", err)
	} else {
		resp.Body.Close()
	}
	resp, err := get(&tls.Config{RootCAs: roots, Certificates: []tls.Certificate{clientPair}})
	if err != nil {
		t.Fatalf("mTLS client refused: %v", err)
	}
	resp.Body.Close()
	if got := resp.TLS.PeerCertificates[0].SerialNumber.Int64(); got != p.serverSerial {
		t.Fatalf("server certificate serial %d, want %d", got, p.serverSerial)
	}
	// Rotation without restart: new files, SIGHUP, new connections see them.
	newCert, newKey, newSerial := p.issue(t, true)
	if err := os.WriteFile(keyFile, newKey, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(certFile, newCert, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := s.cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		resp, err := get(&tls.Config{RootCAs: roots, Certificates: []tls.Certificate{clientPair}})
		if err == nil {
			resp.Body.Close()
			if resp.TLS.PeerCertificates[0].SerialNumber.Int64() == newSerial {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("the new certificate was not served 5 s after SIGHUP (err %v); stderr:\n%s", err, s.stderr)
		}
		time.Sleep(50 * time.Millisecond)
	}
	// A broken file on reload keeps the old certificate in use.
	if err := os.WriteFile(certFile, []byte("not a certificate"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := s.cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	time.Sleep(300 * time.Millisecond)
	resp, err = get(&tls.Config{RootCAs: roots, Certificates: []tls.Certificate{clientPair}})
	if err != nil {
		t.Fatalf("after a failed reload: %v", err)
	}
	resp.Body.Close()
	if !strings.Contains(s.stderr.String(), "TLS reload failed") {
		t.Fatalf("a failed reload was not logged:\n%s", s.stderr)
	}
	// With TLS, a non-loopback address is allowed.
	cert2, key2, _ := p.issue(t, true)
	s2 := c.serve(nil, "--listen", "0.0.0.0:0", "--tls-cert", c.writeFile("s2.pem", string(cert2)), "--tls-key", c.writeFile("s2.key", string(key2)))
	if !strings.HasPrefix(s2.url, "https://") {
		t.Fatalf("ready line names %q", s2.url)
	}
	if code := s2.signal(syscall.SIGINT); code != 0 {
		t.Fatalf("exit %d after SIGINT", code)
	}
}
