package main

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"sync"
	"syscall"
	"time"

	"github.com/keyward/keyward/bootstrap"
	"github.com/keyward/keyward/hsm"
	"github.com/keyward/keyward/server"
	"github.com/urfave/cli/v2"
)

func serveCommand() *cli.Command {
	return &cli.Command{
		Name:  "serve",
		Usage: "serve the HTTP API: tokens, introspection, JWKS, store and transit encryption, health and metrics",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "listen", EnvVars: []string{"KEYWARD_LISTEN"}, Value: server.DefaultAddr, Usage: "host:port (plain HTTP only on a loopback address; :0 picks a free port)"},
			&cli.StringFlag{Name: "public-url", EnvVars: []string{"KEYWARD_PUBLIC_URL"}, Usage: "the URL clients reach this server at (behind a load balancer, its URL): the issuer of its tokens and the base of its metadata (default: the --listen address)"},
			&cli.StringFlag{Name: "tls-cert", EnvVars: []string{"KEYWARD_TLS_CERT"}, Usage: "PEM certificate (chain); read again on SIGHUP"},
			&cli.StringFlag{Name: "tls-key", EnvVars: []string{"KEYWARD_TLS_KEY"}, Usage: "PEM private key of --tls-cert; read again on SIGHUP"},
			&cli.StringFlag{Name: "client-ca", EnvVars: []string{"KEYWARD_CLIENT_CA"}, Usage: "PEM CA certificates: clients must present a certificate from them (mTLS)"},
			&cli.DurationFlag{Name: "shutdown-timeout", EnvVars: []string{"KEYWARD_SHUTDOWN_TIMEOUT"}, Value: 10 * time.Second, Usage: "how long requests in flight may finish after SIGTERM or SIGINT"},
			&cli.DurationFlag{Name: "request-timeout", EnvVars: []string{"KEYWARD_REQUEST_TIMEOUT"}, Value: 10 * time.Second, Usage: "longest a request may take; a database or device that hangs answers 503 after it"},
			&cli.Int64Flag{Name: "max-record", EnvVars: []string{"KEYWARD_MAX_RECORD"}, Value: server.DefaultMaxRecord, Usage: "largest stored record or transit payload, in bytes"},
			&cli.Int64Flag{Name: "max-bytes-in-flight", EnvVars: []string{"KEYWARD_MAX_BYTES_IN_FLIGHT"}, Value: server.DefaultMaxBytesInFlight, Usage: "request bodies held at once, in bytes; beyond it 503 with Retry-After"},
			&cli.Float64Flag{Name: "anonymous-rate", EnvVars: []string{"KEYWARD_ANONYMOUS_RATE"}, Value: server.DefaultAnonymousRate, Usage: "requests a second per client address to revoke by value, pairing redeem and refresh (0: no limit); beyond it 429 with Retry-After"},
			&cli.IntFlag{Name: "anonymous-burst", EnvVars: []string{"KEYWARD_ANONYMOUS_BURST"}, Usage: "requests at once per client address to those routes (default: twice --anonymous-rate)"},
			&cli.BoolFlag{Name: "readyz-details", EnvVars: []string{"KEYWARD_READYZ_DETAILS"}, Usage: "/readyz names the device and says why a check failed to every caller (default: to admin tokens only)"},
			&cli.BoolFlag{Name: "quiet", EnvVars: []string{"KEYWARD_QUIET"}, Usage: "no access log (one JSON line per request on standard error)"},
			&cli.IntFlag{Name: "max-connections", EnvVars: []string{"KEYWARD_MAX_CONNECTIONS"}, Usage: "connections open at once (default: the descriptor limit less a reserve for the device and the database)"},
			&cli.DurationFlag{Name: "bootstrap-token-delete-after", EnvVars: []string{"KEYWARD_BOOTSTRAP_TOKEN_DELETE_AFTER"}, Value: time.Minute, Usage: "how long etc/keys/token.json stays after it is written"},
			&cli.BoolFlag{Name: "bootstrap-transferable", Usage: "keys imported from bootstrap files are transferable (see keyward node)"},
			&cli.BoolFlag{Name: "no-bootstrap", Usage: "do not watch $KEYWARD_HOME/bootstrap/keys"},
		},
		Action: runServe,
	}
}

func runServe(c *cli.Context) error {
	if c.NArg() > 0 {
		return usagef("serve takes no arguments")
	}
	if c.Int64("max-record") < 1 {
		return usagef("--max-record must be at least 1")
	}
	if c.Duration("request-timeout") < time.Millisecond {
		return usagef("--request-timeout must be positive")
	}
	if c.Int64("max-bytes-in-flight") < 1 || c.Float64("anonymous-rate") < 0 || c.Int("anonymous-burst") < 0 {
		return usagef("--max-bytes-in-flight must be positive, --anonymous-rate and --anonymous-burst not negative")
	}
	ctx, stop := signal.NotifyContext(c.Context, os.Interrupt, syscall.SIGTERM)
	defer stop()
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	reload := make(chan struct{}, 1)
	go func() {
		for range hup {
			select {
			case reload <- struct{}{}:
			default:
			}
		}
	}()

	logOut := c.App.ErrWriter
	if c.Bool("quiet") {
		logOut = io.Discard
	}
	// Log lines go out together, at most 50 ms late: a write(2) per
	// request cost as much as a cached introspection's Go work.
	logw := server.NewLogWriter(logOut)
	defer logw.Close() // after Run: the last lines
	log := newLogger(logw)
	metrics := server.NewMetrics()
	cfg, err := nodeConfig(c)
	if err != nil {
		return err
	}
	cfg.Device.Observe = metrics.ObserveDevice
	cfg.Device.OnHealth = deviceHealthLog(log, metrics)
	cfg.MaxRecord = c.Int64("max-record")
	// A node still joining serves too: /readyz says which keys it lacks
	// until they arrive from the nodes that admitted it.
	cfg.Joining = true
	n, err := openConfigured(c, cfg)
	if err != nil {
		return err
	}
	defer n.Close() // after Run: commits queued token records, closes sessions
	// On its first start a node takes its identity, so that a holder can
	// admit it; a device that cannot move keys serves alone.
	nodeLine := ""
	if self, err := n.InitNode(c.Context); err != nil {
		if !errors.Is(err, hsm.ErrNotSupported) {
			return err
		}
		warn(c, []string{"this node cannot take part in key transfer: " + err.Error()})
	} else {
		nodeLine = fmt.Sprintf("keyward: node %s (%s), fingerprint %s", self.ID, self.State, self.Fingerprint)
	}
	rate := c.Float64("anonymous-rate")
	if rate == 0 {
		rate = -1 // Config's word for no limit
	}
	scfg := server.Config{RequestTimeout: c.Duration("request-timeout"), Metrics: metrics, Log: log,
		MaxBytesInFlight: c.Int64("max-bytes-in-flight"), AnonymousRate: rate, AnonymousBurst: c.Int("anonymous-burst"), ReadyzDetails: c.Bool("readyz-details")}
	if !c.Bool("no-bootstrap") {
		scfg.Bootstrap = &bootstrap.Options{Home: n.Home(), DeleteAfter: c.Duration("bootstrap-token-delete-after"), Policy: policyFlag(c, "bootstrap-transferable")}
	}
	srv := server.New(n, scfg)
	if w := n.Device().SoftwareTokenWarning(); w != "" {
		fmt.Fprintln(c.App.ErrWriter, "keyward: warning: "+w)
	}
	err = srv.Run(ctx, server.Listen{Addr: c.String("listen"), TLSCert: c.String("tls-cert"), TLSKey: c.String("tls-key"),
		ClientCA: c.String("client-ca"), ShutdownTimeout: c.Duration("shutdown-timeout"), MaxConnections: c.Int("max-connections"), PublicURL: c.String("public-url")}, reload,
		func(url string) {
			fmt.Fprintln(c.App.ErrWriter, "keyward: serving on "+url)
			if nodeLine != "" {
				fmt.Fprintln(c.App.ErrWriter, nodeLine)
			}
		})
	if errors.Is(err, server.ErrListen) {
		return usageError{err, nil}
	}
	return err
}

// newLogger writes JSON lines to w.
func newLogger(w io.Writer) *slog.Logger { return slog.New(slog.NewJSONHandler(w, nil)) }

// deviceHealthLog is the device's hsm.Config.OnHealth under serve: one log
// line when the device stops answering and one when it answers again (not
// one per request), and the outage count.
func deviceHealthLog(log *slog.Logger, m *server.Metrics) func(hsm.Health) {
	var mu sync.Mutex
	var down time.Time
	return func(h hsm.Health) {
		m.DeviceHealth(h)
		mu.Lock()
		defer mu.Unlock()
		if !h.Up {
			down = h.Since
			log.Warn("device unavailable: requests that need it answer 503 until it is back", "error", h.Err.Error())
			return
		}
		log.Info("device available again", "outage_ms", h.Since.Sub(down).Milliseconds(), "reconnects", h.Reconnects)
	}
}
