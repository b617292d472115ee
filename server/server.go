package server

import (
	"context"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"strings"
	"time"

	"github.com/keyward/keyward/bootstrap"
	"github.com/keyward/keyward/node"
)

// Config tunes a Server; zero values take the defaults.
type Config struct {
	MaxBody    int64         // largest JSON or form body, default 64 KiB
	RetryAfter time.Duration // told to callers with a 503, default 5 s
	// ReconcileEvery is how often the node checks its device against the
	// key registry (a rotation on another node, a key destroyed here);
	// default 5 s. /readyz reports the last result.
	ReconcileEvery time.Duration
	// SyncEvery is how often the node takes the keys other nodes sent it
	// and sends its transferable keys to the nodes its device trusts
	// (package cluster); default 1 s.
	SyncEvery time.Duration
	// PruneEvery is how often the node deletes what the database no
	// longer needs (node.Prune), jittered by up to a tenth so a
	// cluster's nodes spread out; default DefaultPruneEvery, negative:
	// never.
	PruneEvery time.Duration
	// RequestTimeout bounds each request: a database or device that hangs
	// (rather than refusing) still gets the caller a 503 with Retry-After.
	// Default 10 s.
	RequestTimeout time.Duration
	// MaxBytesInFlight bounds the request bodies held at once (each is
	// read whole); beyond it a request gets 503 with Retry-After. Default
	// DefaultMaxBytesInFlight.
	MaxBytesInFlight int64
	// AnonymousRate and AnonymousBurst bound, per client address, the
	// routes whose only credential is a token in the body (revoke by
	// value, pairing redeem, refresh): requests a second and at once;
	// beyond them 429 with Retry-After. Defaults DefaultAnonymousRate and
	// twice that; a negative rate turns the limit off.
	AnonymousRate  float64
	AnonymousBurst int
	// ReadyzDetails gives /readyz's reasons and device name to every
	// caller, not only to admin tokens.
	ReadyzDetails bool
	Log           *slog.Logger // access and error log; default none
	Metrics       *Metrics     // default NewMetrics() (without device operations)
	// Bootstrap, when set, is the node's bootstrap work, done at start and
	// then every second (package bootstrap): key files imported and
	// removed, a token request answered. /readyz reports its failures.
	Bootstrap *bootstrap.Options
}

// Server is keyward's HTTP API over one node.
type Server struct {
	node      *node.Node
	cfg       Config
	log       *slog.Logger
	mux       *http.ServeMux
	routes    []string
	metrics   *metrics
	boot      *bootstrap.Runner // nil without Config.Bootstrap
	public    string            // the public URL (Listen.PublicURL), set by Run before it serves
	bodies    *inFlight         // request bytes held now
	anon      *rateLimiter      // nil: no rate limit
	readiness readinessCache
	handlers  handlers // goroutines that run the handlers (deadline.go)
}

// DefaultPruneEvery is Config.PruneEvery's default.
const DefaultPruneEvery = 10 * time.Minute

// DefaultAnonymousRate is Config.AnonymousRate's default: requests a
// second per client address on the routes without credentials.
const DefaultAnonymousRate = 50

// DefaultMaxRecord is the largest record or transit payload keyward serve
// takes unless told otherwise (node.Config.MaxRecord): a request body is
// held in memory whole.
const DefaultMaxRecord = 1 << 20

// New makes the server of an opened node. The node stays the caller's:
// close it after Run returns. The largest record or transit payload is
// the node's (node.Config.MaxRecord).
func New(n *node.Node, cfg Config) *Server {
	if cfg.MaxBody == 0 {
		cfg.MaxBody = 64 << 10
	}
	if cfg.RetryAfter == 0 {
		cfg.RetryAfter = 5 * time.Second
	}
	if cfg.RequestTimeout == 0 {
		cfg.RequestTimeout = 10 * time.Second
	}
	if cfg.ReconcileEvery == 0 {
		cfg.ReconcileEvery = 5 * time.Second
	}
	if cfg.SyncEvery == 0 {
		cfg.SyncEvery = time.Second
	}
	if cfg.PruneEvery == 0 {
		cfg.PruneEvery = DefaultPruneEvery
	}
	if cfg.Metrics == nil {
		cfg.Metrics = NewMetrics()
	}
	if cfg.MaxBytesInFlight == 0 {
		cfg.MaxBytesInFlight = DefaultMaxBytesInFlight
	}
	if cfg.AnonymousRate == 0 {
		cfg.AnonymousRate = DefaultAnonymousRate
	}
	if cfg.AnonymousBurst == 0 {
		cfg.AnonymousBurst = int(2 * cfg.AnonymousRate)
	}
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.NewJSONHandler(io.Discard, nil))
	}
	s := &Server{node: n, cfg: cfg, log: cfg.Log, mux: http.NewServeMux(), bodies: &inFlight{max: cfg.MaxBytesInFlight},
		handlers: handlers{jobs: make(chan func())}}
	if cfg.AnonymousRate > 0 {
		s.anon = newRateLimiter(cfg.AnonymousRate, max(1, cfg.AnonymousBurst))
	}
	s.metrics = newMetrics(cfg.Metrics, n)
	s.routeAll()
	return s
}

// handlerFunc is a route's handler: it writes its answer, or returns
// the error that fail answers with.
type handlerFunc func(w http.ResponseWriter, r *http.Request) error

// handle registers h for pattern ("METHOD /path").
func (s *Server) handle(pattern string, h handlerFunc) {
	s.routes = append(s.routes, pattern)
	s.metrics.addRoute(pattern)
	s.mux.HandleFunc(pattern, func(w http.ResponseWriter, r *http.Request) {
		if err := h(w, r); err != nil {
			s.fail(w, r, err)
		}
	})
}

// Routes lists the patterns served, as "METHOD /path".
func (s *Server) Routes() []string { return append([]string(nil), s.routes...) }

func (s *Server) routeAll() {
	// Tokens (JFrog Access names and fields).
	s.handle("POST /access/api/v1/tokens", s.createToken)
	s.handle("GET /access/api/v1/tokens", s.listTokens)
	s.handle("GET /access/api/v1/tokens/me", s.getToken)
	s.handle("GET /access/api/v1/tokens/{id}", s.getToken)
	s.handle("DELETE /access/api/v1/tokens/{id}", s.revokeTokenByID)
	s.handle("DELETE /access/api/v1/tokens/revoke", s.rateLimited(s.revokeByValueJFrog))
	s.handle("POST /access/api/v1/tokens/revoke", s.rateLimited(s.revokeTokenByValue))
	s.handle("GET /access/api/v1/system/ping", s.ping)
	s.handle("POST /access/api/v1/pairing", s.createPairing)
	s.handle("POST /access/api/v1/pairing/redeem", s.rateLimited(s.redeemPairing))
	// OAuth 2.0 (RFC 7662, 7009, 8414) and JWKS.
	s.handle("POST /oauth2/introspect", s.introspect)
	s.handle("POST /oauth2/revoke", s.rateLimited(s.oauthRevoke))
	s.handle("GET /.well-known/jwks.json", s.jwks)
	s.handle("GET /.well-known/oauth-authorization-server", s.metadata)
	s.handle("GET /.well-known/openid-configuration", s.metadata)
	// Encrypted data.
	s.handle("GET /api/v1/store", s.listRecords)
	s.handle("PUT /api/v1/store/{name...}", s.putRecord)
	s.handle("GET /api/v1/store/{name...}", s.getRecord)
	s.handle("DELETE /api/v1/store/{name...}", s.deleteRecord)
	s.handle("POST /api/v1/encrypt", s.encrypt)
	s.handle("POST /api/v1/decrypt", s.decrypt)
	// Operations.
	s.handle("GET /healthz", s.healthz)
	s.handle("GET /readyz", s.readyz)
	s.handle("GET /metrics", s.metricsHandler())
	// Anything else: a JSON 404, or 405 with Allow (not Go's plain text).
	// The store's root without a slash is registered too: else the mux
	// answers PUT or DELETE there with a redirect to the subtree.
	noRoute := func(w http.ResponseWriter, r *http.Request) { s.fail(w, r, s.noRoute(r)) }
	s.mux.HandleFunc("/", noRoute)
	s.mux.HandleFunc("/api/v1/store", noRoute)
}

// noRoute is the error for a request no route matched: 405 with Allow
// when another method would match, else 404.
func (s *Server) noRoute(r *http.Request) error {
	var allow []string
	for _, m := range []string{http.MethodGet, http.MethodPut, http.MethodPost, http.MethodDelete} {
		other := *r
		other.Method = m
		if _, p := s.mux.Handler(&other); strings.HasPrefix(p, m+" ") { // a route, not a redirect or noRoute
			allow = append(allow, m)
		}
	}
	if len(allow) > 0 {
		e := errorf(http.StatusMethodNotAllowed, "METHOD_NOT_ALLOWED", "%s is not served on %s; use %s", r.Method, r.URL.Path, strings.Join(allow, " or "))
		e.allow = strings.Join(allow, ", ")
		return e
	}
	return errorf(http.StatusNotFound, "NOT_FOUND", "no route %s %s (see docs/API.md)", r.Method, r.URL.Path)
}

// unclean says path (as sent, percent-escapes kept) has empty, "." or
// ".." segments, which Go's router would answer with a redirect (and curl
// take for success). It is judged before decoding, as the router matches:
// %2F and %2E are data, so a record name holding "//" or ".." is sent
// with its slashes as %2F.
func unclean(path string) bool {
	return strings.Contains(path, "//") || strings.Contains(path, "/./") || strings.Contains(path, "/../") ||
		strings.HasSuffix(path, "/.") || strings.HasSuffix(path, "/..")
}

// Handler is the API with its access log and request metrics.
func (s *Server) Handler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		info := &reqInfo{}
		ctx, cancel := context.WithTimeout(context.WithValue(r.Context(), infoKey{}, info), s.cfg.RequestTimeout)
		defer cancel()
		r = r.WithContext(ctx)
		r.Body = clientBody{r.Body}
		rec := &statusRecorder{ResponseWriter: w, status: http.StatusOK}
		held := s.bodyBytes(r)
		switch {
		case unclean(r.URL.EscapedPath()):
			s.fail(rec, r, errorf(http.StatusBadRequest, "BAD_REQUEST", "the path must not hold empty, \".\" or \"..\" segments; send a \"/\" that is part of a record name as %%2F"))
		case !s.bodies.take(held):
			s.fail(rec, r, errBusy)
		default:
			s.serveWithin(rec, r, s.mux.ServeHTTP)
			s.bodies.give(held)
		}
		d := time.Since(start)
		route := r.Pattern
		if route == "" || route == "/" {
			route = "unmatched"
		}
		s.metrics.observe(route, rec.status, d)
		// One line per request: never a token, a PIN, a key or a body.
		// (A record made here skips Logger's runtime.Callers: no source.)
		if h := s.log.Handler(); h.Enabled(ctx, slog.LevelInfo) {
			line := slog.NewRecord(start.Add(d), slog.LevelInfo, "request", 0)
			line.AddAttrs(slog.String("method", r.Method), slog.String("route", route), slog.Int("status", rec.status),
				slog.Float64("duration_ms", float64(d.Microseconds())/1000), slog.String("token_id", info.tokenID),
				slog.String("remote", r.RemoteAddr))
			h.Handle(ctx, line)
		}
	})
}

// statusRecorder notes the status a handler answered.
type statusRecorder struct {
	http.ResponseWriter
	status int
}

func (w *statusRecorder) WriteHeader(code int) {
	w.status = code
	w.ResponseWriter.WriteHeader(code)
}

// reconcileLoop reconciles every ReconcileEvery until ctx ends.
func (s *Server) reconcileLoop(ctx context.Context) {
	t := time.NewTicker(s.cfg.ReconcileEvery)
	defer t.Stop()
	var said loopLog
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if err := s.node.Reconcile(ctx); ctx.Err() == nil {
				said.say(s.log, "reconcile", err)
			}
		}
	}
}

// syncLoop runs the node's key transfer round every SyncEvery until ctx
// ends, and logs what it took, refused or sent.
func (s *Server) syncLoop(ctx context.Context) {
	t := time.NewTicker(s.cfg.SyncEvery)
	defer t.Stop()
	var said loopLog
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			rep, err := s.node.SyncNodes(ctx)
			if ctx.Err() != nil {
				return
			}
			said.say(s.log, "key transfer", err)
			if len(rep.Delivered) > 0 || len(rep.Refused) > 0 || rep.Sent > 0 {
				s.log.Info("key transfer", "received", rep.Delivered, "refused", rep.Refused, "sent", rep.Sent)
			}
			if len(rep.Dropped) > 0 {
				s.log.Warn("key transfer: a received key was held twice under one label (left by an older keyward, or by processes of this node with different home directories); the extra objects were destroyed", "labels", rep.Dropped)
			}
		}
	}
}

// pruneLoop prunes the database a minute after start, then about every
// PruneEvery, until ctx ends, and logs what it deleted.
func (s *Server) pruneLoop(ctx context.Context) {
	wait := min(time.Minute, s.cfg.PruneEvery)
	var said loopLog
	for {
		select {
		case <-ctx.Done():
			return
		case <-time.After(wait + rand.N(wait/10+1)):
		}
		wait = s.cfg.PruneEvery
		p, err := s.node.Prune(ctx)
		if ctx.Err() != nil {
			return
		}
		said.say(s.log, "prune", err)
		if p.Revocations+p.Tokens+p.RefreshTokens+p.Audit > 0 {
			s.log.Info("prune", "revocations", p.Revocations, "tokens", p.Tokens, "refresh_tokens", p.RefreshTokens, "audit", p.Audit)
		}
	}
}

// loopLog logs a background loop's failure once, not at every round: a
// device or database away for a minute is one line (and the device's
// own outage line), and one more when the loop works again.
type loopLog struct{ last string }

func (l *loopLog) say(log *slog.Logger, what string, err error) {
	switch {
	case err == nil && l.last != "":
		log.Info(what + " works again")
		l.last = ""
	case err != nil && err.Error() != l.last:
		l.last = err.Error()
		log.Warn(what, "error", l.last)
	}
}
