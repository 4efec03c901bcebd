package coverage

import (
	"errors"
	"testing"

	"github.com/neuroshard/neuroshard/layers"
)

func TestChooseSpan(t *testing.T) {
	m, _ := layers.Preset("neuroshard-small") // 8 layers
	per := m.LayerMemoryBytes()
	extra := (m.EmbeddingParams() + m.HeadParams()) * 4 * 6
	for _, tc := range []struct {
		name     string
		replicas []int
		budget   int64
		want     layers.Span
	}{
		{"everything fits", []int{0, 0, 0, 0, 0, 0, 0, 0}, 1 << 40, layers.Span{First: 0, Last: 7}},
		{"empty network, three layers", []int{0, 0, 0, 0, 0, 0, 0, 0}, 3*per + extra, layers.Span{First: 0, Last: 2}},
		{"second node covers the next block", []int{1, 1, 1, 0, 0, 0, 0, 0}, 3*per + extra, layers.Span{First: 3, Last: 5}},
		{"third node covers the tail", []int{1, 1, 1, 1, 1, 1, 0, 0}, 3*per + extra, layers.Span{First: 5, Last: 7}},
		{"a hole beats a thin span", []int{1, 1, 1, 1, 0, 5, 5, 5}, 3*per + extra, layers.Span{First: 2, Last: 4}},
		{"least replicated when all covered", []int{3, 3, 1, 1, 3, 3, 2, 2}, 2*per + extra, layers.Span{First: 2, Last: 3}},
		{"aligned wins a tie", []int{1, 0, 0, 0, 0, 1, 1, 1}, 2*per + extra, layers.Span{First: 2, Last: 3}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ChooseSpan(m, tc.replicas, tc.budget)
			if err != nil {
				t.Fatal(err)
			}
			if got != tc.want {
				t.Fatalf("got %v, want %v", got, tc.want)
			}
		})
	}
	if _, err := ChooseSpan(m, make([]int, 8), 10); !errors.Is(err, ErrNoSpanFits) {
		t.Fatalf("tiny budget: %v", err)
	}
	if _, err := ChooseSpan(m, make([]int, 3), 1<<40); err == nil {
		t.Fatal("wrong replica count accepted")
	}
}
