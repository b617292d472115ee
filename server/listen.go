package server

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log"
	"net"
	"net/http"
	"os"
	"sync"
	"sync/atomic"
	"time"
)

// ErrListen is a listen configuration keyward refuses.
var ErrListen = errors.New("cannot serve there")

// Listen says where and how the server listens.
type Listen struct {
	Addr            string        // host:port; default 127.0.0.1:8321
	TLSCert, TLSKey string        // PEM files; both or neither
	ClientCA        string        // PEM file: clients must present a certificate from it (mTLS)
	ShutdownTimeout time.Duration // how long requests in flight may finish; default 10 s
	// MaxConnections bounds the connections open at once; default: the
	// descriptor limit (raised to its hard limit) less a reserve for the
	// device and the database (conns.go).
	MaxConnections int
	// PublicURL is the URL clients reach the server at (behind a load
	// balancer, the balancer's): the issuer of the tokens it signs and the
	// base of its metadata's URLs. Default: the address it listens on.
	PublicURL string
}

// DefaultAddr is where keyward serves unless told otherwise.
const DefaultAddr = "127.0.0.1:8321"

// tlsFiles holds the TLS configuration read from the files, replaced on
// Reload.
type tlsFiles struct {
	l   Listen
	cur atomic.Pointer[tls.Config]
}

// aeadSuites are the TLS 1.2 suites offered: forward secrecy and an AEAD
// only (no CBC, no SHA-1 MAC). TLS 1.3's suites are all AEAD already.
var aeadSuites = []uint16{
	tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256, tls.TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384, tls.TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
	tls.TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256, tls.TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384, tls.TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
}

func (t *tlsFiles) load() error {
	cert, err := tls.LoadX509KeyPair(t.l.TLSCert, t.l.TLSKey)
	if err != nil {
		return fmt.Errorf("%w: TLS certificate %s and key %s: %v", ErrListen, t.l.TLSCert, t.l.TLSKey, err)
	}
	cfg := &tls.Config{MinVersion: tls.VersionTLS12, CipherSuites: aeadSuites, Certificates: []tls.Certificate{cert}}
	if t.l.ClientCA != "" {
		pem, err := os.ReadFile(t.l.ClientCA)
		if err != nil {
			return fmt.Errorf("%w: client CA: %v", ErrListen, err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return fmt.Errorf("%w: client CA %s holds no PEM certificate", ErrListen, t.l.ClientCA)
		}
		cfg.ClientCAs, cfg.ClientAuth = pool, tls.RequireAndVerifyClientCert
	}
	t.cur.Store(cfg)
	return nil
}

// loopback says host is a loopback name or address.
func loopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// checkListen refuses what must not be: half a TLS pair, a client CA
// without TLS, plain HTTP beyond this machine.
func checkListen(l *Listen) error {
	if l.Addr == "" {
		l.Addr = DefaultAddr
	}
	if l.ShutdownTimeout == 0 {
		l.ShutdownTimeout = 10 * time.Second
	}
	host, _, err := net.SplitHostPort(l.Addr)
	if err != nil {
		return fmt.Errorf("%w: --listen %q: %v", ErrListen, l.Addr, err)
	}
	if (l.TLSCert == "") != (l.TLSKey == "") {
		return fmt.Errorf("%w: give both --tls-cert and --tls-key, or neither", ErrListen)
	}
	if l.ClientCA != "" && l.TLSCert == "" {
		return fmt.Errorf("%w: --client-ca needs TLS (--tls-cert and --tls-key)", ErrListen)
	}
	if l.TLSCert == "" && !loopback(host) {
		return fmt.Errorf("%w: %s is not a loopback address, and without TLS tokens and secrets would cross the network in the clear; give --tls-cert and --tls-key, or listen on 127.0.0.1", ErrListen, l.Addr)
	}
	return nil
}

// Run serves on l until ctx ends, then shuts down gracefully: it stops
// accepting, lets requests in flight finish for up to l.ShutdownTimeout,
// and returns. ready is called with the URL once the listener is bound.
// reload, when not nil, delivers requests to read the TLS files again
// (SIGHUP); a failed reload keeps the files in use and is logged.
func (s *Server) Run(ctx context.Context, l Listen, reload <-chan struct{}, ready func(url string)) error {
	if err := checkListen(&l); err != nil {
		return err
	}
	if l.PublicURL != "" {
		u, err := checkPublicURL(l.PublicURL)
		if err != nil {
			return err
		}
		l.PublicURL = u
	}
	var files *tlsFiles
	if l.TLSCert != "" {
		files = &tlsFiles{l: l}
		if err := files.load(); err != nil {
			return err
		}
	}
	raw, err := net.Listen("tcp", l.Addr)
	if err != nil {
		return fmt.Errorf("%w: %v", ErrListen, err)
	}
	if l.MaxConnections == 0 {
		l.MaxConnections = maxConnections()
	}
	limited := newLimitListener(raw, l.MaxConnections)
	open := limited.open
	s.metrics.connections.Store(&open)
	var ln net.Listener = limited
	scheme := "http"
	if files != nil {
		scheme = "https"
		base := &tls.Config{MinVersion: tls.VersionTLS12,
			GetConfigForClient: func(*tls.ClientHelloInfo) (*tls.Config, error) { return files.cur.Load(), nil }}
		ln = tls.NewListener(ln, base)
	}
	hs := &http.Server{
		Handler:           s.Handler(),
		ReadHeaderTimeout: headerTimeout,
		ReadTimeout:       bodyTimeout,
		WriteTimeout:      writeTimeout,
		IdleTimeout:       idleTimeout,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          log.New(&serverLog{log: s.log, handshakes: s.metrics.tlsHandshakeErrors}, "", 0),
	}
	if l.PublicURL == "" {
		l.PublicURL = defaultPublicURL(scheme, ln.Addr())
	}
	if err := s.node.Tokens().UseIssuer(ctx, l.PublicURL); err != nil {
		return err
	}
	s.public = l.PublicURL
	if err := s.node.Tokens().Warm(ctx); err != nil {
		s.log.Warn("signing key pairs or revocations not read at start", "error", err.Error())
	}
	runCtx, stop := context.WithCancel(ctx)
	if o := s.cfg.Bootstrap; o != nil {
		s.boot = s.startBootstrap(runCtx, *o)
		defer waitAtMost(s.boot.Wait, l.ShutdownTimeout)
	}
	var background sync.WaitGroup
	// The node is closed after Run: nothing may still use it. A loop held
	// by a device that hangs is not waited for past ShutdownTimeout.
	defer waitAtMost(background.Wait, l.ShutdownTimeout)
	defer stop()
	if s.boot != nil {
		background.Go(func() { s.boot.Watch(runCtx) })
	}
	background.Go(func() { s.reconcileLoop(runCtx) })
	background.Go(func() { s.syncLoop(runCtx) })
	if s.cfg.PruneEvery > 0 {
		background.Go(func() { s.pruneLoop(runCtx) })
	}
	if reload != nil {
		background.Go(func() {
			for {
				select {
				case <-runCtx.Done():
					return
				case <-reload:
					if files == nil {
						continue
					}
					if err := files.load(); err != nil {
						s.log.Error("TLS reload failed; the old certificate stays in use", "error", err.Error())
					} else {
						s.log.Info("TLS certificate and key read again")
					}
				}
			}
		})
	}
	served := make(chan error, 1)
	go func() { served <- hs.Serve(ln) }()
	if ready != nil {
		ready(scheme + "://" + ln.Addr().String())
	}
	select {
	case err := <-served:
		return err
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), l.ShutdownTimeout)
	defer cancel()
	if err := hs.Shutdown(sctx); err != nil {
		hs.Close()
		return fmt.Errorf("shutdown: requests still running after %s were cut off", l.ShutdownTimeout)
	}
	return nil
}

// waitAtMost waits for wait to return, or for d.
func waitAtMost(wait func(), d time.Duration) {
	done := make(chan struct{})
	go func() { wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(d):
	}
}
