package httpapi

import (
	"math"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/labstack/echo/v4"
	"github.com/neuroshard/neuroshard/httpapi/apitypes"
	"golang.org/x/time/rate"
)

// Class groups endpoints that share a rate limit (seed 003).
type Class string

// Rate-limit classes and their default budgets per minute.
const (
	ClassStatus    Class = "status"    // status, metrics and the other read endpoints: 100/min
	ClassInference Class = "inference" // 60/min
	ClassWallet    Class = "wallet"    // 10/min
)

// DefaultLimits are seed 003's budgets, requests per minute per client.
var DefaultLimits = map[Class]int{ClassStatus: 100, ClassInference: 60, ClassWallet: 10}

// limiter keeps a token bucket (x/time/rate) per (class, client): a full bucket holds a
// minute's budget and refills continuously, so a burst up to the budget passes and then one
// request per 60/N s.
type limiter struct {
	mu      sync.Mutex
	key     func(echo.Context) string // whose budget a request spends (rateKey)
	perMin  map[Class]int
	buckets map[string]*bucket
	now     func() time.Time
	sweep   time.Time
}

type bucket struct {
	lim  *rate.Limiter
	last time.Time
}

func newLimiter(perMin map[Class]int) *limiter {
	return &limiter{perMin: perMin, buckets: map[string]*bucket{}, now: time.Now}
}

// take spends one token; when none is left it returns how long until one is.
func (l *limiter) take(class Class, client string) (ok bool, retryAfter time.Duration) {
	limit := l.perMin[class]
	if limit <= 0 {
		return true, 0
	}
	perSec := rate.Limit(float64(limit) / 60)
	now := l.now()
	l.mu.Lock()
	defer l.mu.Unlock()
	l.gc(now)
	key := string(class) + "|" + client
	b := l.buckets[key]
	if b == nil {
		b = &bucket{lim: rate.NewLimiter(perSec, limit)}
		b.lim.SetLimitAt(now, perSec) // the bucket's clock starts now (full)
		l.buckets[key] = b
	}
	b.last = now
	if b.lim.AllowN(now, 1) {
		return true, 0
	}
	return false, time.Duration((1 - b.lim.TokensAt(now)) / float64(perSec) * float64(time.Second))
}

// gc drops buckets idle long enough to be full again, bounding memory to active clients.
func (l *limiter) gc(now time.Time) {
	if now.Sub(l.sweep) < time.Minute {
		return
	}
	l.sweep = now
	for k, b := range l.buckets {
		if now.Sub(b.last) > time.Minute {
			delete(l.buckets, k)
		}
	}
}

func (l *limiter) middleware(class Class) echo.MiddlewareFunc {
	return func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c echo.Context) error {
			who := "ip:" + c.RealIP()
			if l.key != nil {
				who = l.key(c)
			}
			ok, wait := l.take(class, who)
			if !ok {
				secs := int(math.Ceil(wait.Seconds()))
				c.Response().Header().Set("Retry-After", strconv.Itoa(secs))
				return apitypes.NewError(http.StatusTooManyRequests, apitypes.CodeRateLimited, "Too many requests",
					map[string]any{"retry_after": secs, "limit_per_minute": l.perMin[class], "class": string(class)})
			}
			return next(c)
		}
	}
}
