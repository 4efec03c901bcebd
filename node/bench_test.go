package node

import (
	"io"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/labstack/echo/v4"
	"github.com/neuroshard/neuroshard/httpapi"
)

// hammer sends GET url from `workers` keep-alive clients for d and returns requests per second.
func hammer(b *testing.B, url, token string, workers int, d time.Duration) float64 {
	var count atomic.Int64
	var wg sync.WaitGroup
	stop := time.Now().Add(d)
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			hc := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 1}}
			for time.Now().Before(stop) {
				req, _ := http.NewRequest(http.MethodGet, url, nil)
				req.Header.Set("Authorization", "Bearer "+token)
				resp, err := hc.Do(req)
				if err != nil {
					b.Error(err)
					return
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode != http.StatusOK {
					b.Errorf("status %d", resp.StatusCode)
					return
				}
				count.Add(1)
			}
		}()
	}
	wg.Wait()
	return float64(count.Load()) / d.Seconds()
}

// BenchmarkStatusVsBareEcho: requests per second of the node's GET /api/v1/status (auth,
// rate-limit bookkeeping, the node's real status) against a bare echo handler returning a
// constant JSON body, both over real HTTP on loopback, same clients, same run.
func BenchmarkStatusVsBareEcho(b *testing.B) {
	cfg := testConfig(b)
	cfg.RateLimits = map[httpapi.Class]int{} // unlimited: measure the handler, not the limiter's refusals
	n := startNode(b, cfg)

	e := echo.New()
	e.HideBanner, e.HidePort = true, true
	e.GET("/status", func(c echo.Context) error { return c.JSON(http.StatusOK, map[string]any{"ok": true}) })
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	srv := &http.Server{Handler: e}
	go srv.Serve(ln)
	defer srv.Close()

	const workers, d = 4, 2 * time.Second
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		bare := hammer(b, "http://"+ln.Addr().String()+"/status", "", workers, d)
		node := hammer(b, n.APIURL()+"/api/v1/status", n.Token(), workers, d)
		b.ReportMetric(node, "status-req/s")
		b.ReportMetric(bare, "bare-echo-req/s")
		b.ReportMetric(node/bare, "status/bare")
	}
}
