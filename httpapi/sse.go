package httpapi

import (
	"encoding/json"
	"fmt"
	"net/http"

	"github.com/labstack/echo/v4"
)

// sse writes Server-Sent Events; the headers go out with the first event, so an error before
// it can still be an ordinary error answer.
type sse struct {
	w       *echo.Response
	started bool
}

// send writes one event: v as JSON (a string is written as it is).
func (s *sse) send(event string, v any) error {
	var data []byte
	if str, ok := v.(string); ok {
		data = []byte(str)
	} else {
		var err error
		if data, err = json.Marshal(v); err != nil {
			return err
		}
	}
	if !s.started {
		h := s.w.Header()
		h.Set(echo.HeaderContentType, "text/event-stream")
		h.Set("Cache-Control", "no-cache")
		h.Set("X-Accel-Buffering", "no")
		s.w.WriteHeader(http.StatusOK)
		s.started = true
	}
	if event != "" {
		if _, err := fmt.Fprintf(s.w, "event: %s\n", event); err != nil {
			return err
		}
	}
	if _, err := fmt.Fprintf(s.w, "data: %s\n\n", data); err != nil {
		return err
	}
	s.w.Flush()
	return nil
}
