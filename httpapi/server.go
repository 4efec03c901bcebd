package httpapi

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/labstack/echo/v4"
	"github.com/labstack/echo/v4/middleware"
	"github.com/neuroshard/neuroshard/httpapi/apitypes"
)

// Backend answers the API's questions; the node implements it. Methods that can fail return
// an *Error to choose the status and code.
type Backend interface {
	Status(ctx context.Context) apitypes.Status
	Health(ctx context.Context) apitypes.Health
	Peers(ctx context.Context) apitypes.PeerList
	Layers(ctx context.Context) apitypes.LayerList
	Network(ctx context.Context) apitypes.Network
	Config(ctx context.Context) apitypes.NodeConfig
	PatchConfig(ctx context.Context, p apitypes.ConfigPatch) (apitypes.ConfigPatchResult, error)
	RoutingTable(ctx context.Context) apitypes.RoutingTable
	Providers(ctx context.Context, layer int) (apitypes.Providers, error)
	FindPeer(ctx context.Context, id string) (apitypes.PeerAddrs, error)
	Coverage(ctx context.Context) apitypes.Coverage
	Metrics(ctx context.Context) apitypes.Metrics
	TrainingGlobal(ctx context.Context) apitypes.TrainingGlobal
	TrainingVerify(ctx context.Context) apitypes.TrainingVerify
	TrainingRounds(ctx context.Context) apitypes.TrainingRounds
	// Inference generates; emit, when not nil, receives text as it is produced (streaming).
	Inference(ctx context.Context, req apitypes.InferenceRequest, emit func(apitypes.TokenEvent) error) (*apitypes.InferenceResponse, error)
	Wallet
	Tasks
	Models
	Events
	Insights
}

// shutdownTimeout bounds how long Close waits for requests in flight.
const shutdownTimeout = 5 * time.Second

// Server is the REST API server.
type Server struct {
	e       *echo.Echo
	backend Backend
	limits  *limiter
	// bodyGrace is BodyGrace unless an option (tests) changes it.
	bodyGrace time.Duration
	token     string
	closing   chan struct{} // closed when Close begins: long-lived connections (WebSocket) end
	once      sync.Once

	mu   sync.Mutex
	srv  *http.Server
	ln   net.Listener
	done chan struct{}
}

// Option changes a Server.
type Option func(*Server)

// WithRateLimits replaces the per-minute budgets of the rate-limit classes.
func WithRateLimits(perMin map[Class]int) Option {
	return func(s *Server) { s.limits = newLimiter(perMin) }
}

// WithBodyGrace replaces BodyGrace, the time a request body gets beyond its length at
// BodyMinRate.
func WithBodyGrace(d time.Duration) Option {
	return func(s *Server) { s.bodyGrace = d }
}

// New builds the API for a backend, guarded by a bearer token.
func New(b Backend, token string, opts ...Option) (*Server, error) {
	if b == nil {
		return nil, errors.New("httpapi: nil backend")
	}
	if token == "" {
		return nil, errors.New("httpapi: empty API token")
	}
	s := &Server{backend: b, limits: newLimiter(DefaultLimits), token: token, closing: make(chan struct{}), bodyGrace: BodyGrace}
	for _, o := range opts {
		o(s)
	}
	s.limits.key = rateKey(sha256.Sum256([]byte(token)))
	e := echo.New()
	e.HideBanner, e.HidePort = true, true
	e.HTTPErrorHandler = errorHandler
	e.JSONSerializer = jsonSerializer{}
	// The API answers local clients; headers a client sets must not choose its rate bucket.
	e.IPExtractor = echo.ExtractIPDirect()
	e.Use(middleware.Recover())
	e.Use(middleware.BodyLimit(fmt.Sprint(maxBodyBytes) + "B"))
	e.Use(s.bodyDeadline)
	s.e = e
	s.routes(requireToken(token))
	return s, nil
}

// A request body must arrive within BodyGrace plus its length at BodyMinRate: a client that
// sends a byte a second no longer holds a connection (and a handler) for minutes.
const (
	BodyGrace   = 10 * time.Second
	BodyMinRate = 16 << 10 // bytes per second
)

// bodyDeadline sets the connection's read deadline for a request that has a body.
func (s *Server) bodyDeadline(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		r := c.Request()
		if r.ContentLength != 0 && r.Body != nil && r.Body != http.NoBody {
			n := r.ContentLength
			if n < 0 { // chunked: as long as the largest body takes
				n = maxBodyBytes
			}
			d := s.bodyGrace + time.Duration(n)*time.Second/BodyMinRate
			// Not every writer can (httptest's recorder): no listener, no slow client.
			_ = http.NewResponseController(c.Response()).SetReadDeadline(time.Now().Add(d))
		}
		return next(c)
	}
}

// Handler is the API as an http.Handler (for tests and benchmarks).
func (s *Server) Handler() http.Handler { return s.e }

// Start listens on addr ("host:port"; port 0 picks one) and serves in the background.
func (s *Server) Start(addr string) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("httpapi: listen on %s: %w", addr, err)
	}
	srv := &http.Server{Handler: s.e, ReadHeaderTimeout: 10 * time.Second, IdleTimeout: 2 * time.Minute}
	s.mu.Lock()
	s.srv, s.ln, s.done = srv, ln, make(chan struct{})
	s.mu.Unlock()
	go func() {
		defer close(s.done)
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			logger().Error("REST API stopped", "err", err)
		}
	}()
	logger().Info("REST API listening", "addr", ln.Addr().String())
	return nil
}

// Addr is the listening address, or nil before Start.
func (s *Server) Addr() net.Addr {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ln == nil {
		return nil
	}
	return s.ln.Addr()
}

// Close stops accepting requests and waits (bounded) for those in flight.
func (s *Server) Close() error {
	s.once.Do(func() { close(s.closing) })
	s.mu.Lock()
	srv, done := s.srv, s.done
	s.srv = nil
	s.mu.Unlock()
	if srv == nil {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), shutdownTimeout)
	defer cancel()
	err := srv.Shutdown(ctx)
	if err != nil {
		err = errors.Join(err, srv.Close())
	}
	<-done
	return err
}
