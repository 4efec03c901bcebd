package layers

import (
	"fmt"
	"strconv"
	"strings"
)

// Span is a contiguous, inclusive range of layer indices held by one stage.
type Span struct {
	First int `json:"first"`
	Last  int `json:"last"`
}

// ParseSpan parses "A-B" (inclusive) or a single layer "A".
func ParseSpan(s string) (Span, error) {
	s = strings.TrimSpace(s)
	a, b, found := strings.Cut(s, "-")
	first, err := strconv.Atoi(strings.TrimSpace(a))
	if err != nil {
		return Span{}, fmt.Errorf("%w: %q is not A-B", ErrInvalidSpan, s)
	}
	last := first
	if found {
		if last, err = strconv.Atoi(strings.TrimSpace(b)); err != nil {
			return Span{}, fmt.Errorf("%w: %q is not A-B", ErrInvalidSpan, s)
		}
	}
	sp := Span{First: first, Last: last}
	if first < 0 || last < first {
		return Span{}, fmt.Errorf("%w: %q (need 0 <= A <= B)", ErrInvalidSpan, s)
	}
	return sp, nil
}

// String formats the span as "A-B".
func (s Span) String() string { return fmt.Sprintf("%d-%d", s.First, s.Last) }

// Len is the number of layers in the span.
func (s Span) Len() int { return s.Last - s.First + 1 }

// Contains reports whether layer i is in the span.
func (s Span) Contains(i int) bool { return i >= s.First && i <= s.Last }

// Indices lists the span's layer indices in order.
func (s Span) Indices() []int {
	out := make([]int, 0, s.Len())
	for i := s.First; i <= s.Last; i++ {
		out = append(out, i)
	}
	return out
}

// CheckIn reports an error when the span does not fit a model with n layers.
func (s Span) CheckIn(n int) error {
	if s.First < 0 || s.Last < s.First || s.Last >= n {
		return fmt.Errorf("%w: %s is outside a model of %d layers (0-%d)", ErrInvalidSpan, s, n, n-1)
	}
	return nil
}
