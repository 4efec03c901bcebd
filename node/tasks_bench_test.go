package node

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/neuroshard/neuroshard/httpapi/apitypes"
	"github.com/neuroshard/neuroshard/internal/par"
)

func benchNode(b *testing.B) *Node {
	cfg := testConfig(b)
	cfg.Model, cfg.Layers = "neuroshard-tiny", "0-3"
	return startNode(b, cfg, unlimited)
}

// BenchmarkTasksVsDirectInference: 40 generations of 8 tokens with the tiny model, as tasks
// (submitted at once over HTTP, queued durably, run two at a time, polled until done) and as
// direct POST /api/v1/inference calls from 8 concurrent clients, same node, same run.
func BenchmarkTasksVsDirectInference(b *testing.B) {
	b.ReportAllocs()
	n := benchNode(b)
	c := apiClient(n)
	ctx := context.Background()
	const jobs = 40
	prompt, mt := "ROMEO:", 8
	var taskRate, directRate float64
	for range b.N {
		start := time.Now()
		ids := make([]string, jobs)
		par.Do(jobs, 8, func(i int) {
			r, err := c.SubmitTask(ctx, apitypes.TaskRequest{Prompt: &prompt, MaxTokens: &mt})
			if err != nil {
				b.Error(err)
			}
			ids[i] = r.TaskID
		})
		for _, id := range ids {
			for {
				v, err := c.Task(ctx, id)
				if err != nil {
					b.Fatal(err)
				}
				if v.Status == "completed" {
					break
				}
				time.Sleep(2 * time.Millisecond)
			}
		}
		taskRate = jobs / time.Since(start).Seconds()

		start = time.Now()
		par.Do(jobs, 8, func(int) {
			if _, err := c.Inference(ctx, apitypes.InferenceRequest{Prompt: &prompt, MaxTokens: &mt}); err != nil {
				b.Error(err)
			}
		})
		directRate = jobs / time.Since(start).Seconds()
	}
	b.ReportMetric(taskRate, "tasks/s")
	b.ReportMetric(directRate, "direct/s")
	b.ReportMetric(taskRate/directRate, "ratio")
}

// BenchmarkWebSocketEventLatency: time from an event's creation on the node (its timestamp) to
// its arrival at a WebSocket client, over the events of 20 tasks; baseline: the round trip of
// GET /api/v1/health on the same loopback.
func BenchmarkWebSocketEventLatency(b *testing.B) {
	b.ReportAllocs()
	n := benchNode(b)
	c := apiClient(n)
	ctx := context.Background()
	conn, _, err := websocket.DefaultDialer.Dial("ws"+strings.TrimPrefix(n.APIURL(), "http")+"/ws", nil)
	if err != nil {
		b.Fatal(err)
	}
	defer conn.Close()
	conn.WriteJSON(map[string]string{"type": "auth", "token": n.Token()})
	var lat []time.Duration
	done := make(chan struct{})
	completed := 0
	go func() {
		defer close(done)
		for {
			var ev apitypes.Event
			if err := conn.ReadJSON(&ev); err != nil {
				return
			}
			at, err := time.Parse(time.RFC3339Nano, ev.Timestamp)
			if err != nil || !strings.HasPrefix(ev.Type, "task.") {
				continue
			}
			lat = append(lat, time.Since(at))
			if ev.Type == "task.completed" {
				if completed++; completed == 20*b.N {
					return
				}
			}
		}
	}()
	prompt, mt := "ROMEO:", 8
	for range b.N * 20 {
		if _, err := c.SubmitTask(ctx, apitypes.TaskRequest{Prompt: &prompt, MaxTokens: &mt}); err != nil {
			b.Fatal(err)
		}
	}
	select {
	case <-done:
	case <-time.After(2 * time.Minute):
		b.Fatal("events did not arrive")
	}
	var rtt []time.Duration
	for range 200 {
		start := time.Now()
		if _, err := c.Health(ctx); err != nil {
			b.Fatal(err)
		}
		rtt = append(rtt, time.Since(start))
	}
	slices.Sort(lat)
	slices.Sort(rtt)
	p50 := lat[len(lat)/2]
	b.ReportMetric(float64(p50.Microseconds())/1000, "event_p50_ms")
	b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds())/1000, "event_p99_ms")
	b.ReportMetric(float64(rtt[len(rtt)/2].Microseconds())/1000, "health_rtt_p50_ms")
	b.ReportMetric(float64(p50)/float64(rtt[len(rtt)/2]), "ratio")
}
