package diloco

import (
	"fmt"
	"math"
	"slices"
	"sort"

	"github.com/neuroshard/neuroshard/layers"
)

// Method chooses how contributions are combined.
type Method string

// Aggregation methods.
const (
	Mean        Method = "mean"         // the average
	TrimmedMean Method = "trimmed-mean" // per coordinate, drop the extremes, average the rest
)

// Aggregator combines the pseudo-gradients of a span's replicas.
type Aggregator struct {
	Method Method
	// TrimFraction is the share of contributions dropped at each end, per coordinate, by the
	// trimmed mean (at least one at each end when there are three or more).
	TrimFraction float64
	// OutlierFactor excludes a contribution whose L2 norm is more than this many times the
	// median norm of the others; of two contributions, the larger when it is more than this many
	// times the other (0 disables the check).
	OutlierFactor float64
}

// DefaultAggregator is the mean with an outlier check at 10x the median norm.
func DefaultAggregator() Aggregator {
	return Aggregator{Method: Mean, TrimFraction: 0.2, OutlierFactor: 10}
}

// Contribution is one replica's pseudo-gradient.
type Contribution struct {
	Peer string
	Grad *layers.Params
}

// Result is an aggregation's outcome: the combined pseudo-gradient, the peers it used, and the
// peers excluded with the reason (the caller flags them).
type Result struct {
	Grad     *layers.Params
	Used     []string
	Excluded map[string]string
}

// Norm is a pseudo-gradient's L2 norm.
func Norm(p *layers.Params) float64 {
	s := 0.0
	for _, v := range p.Values {
		for _, x := range v {
			s += float64(x) * float64(x)
		}
	}
	return math.Sqrt(s)
}

// Aggregate validates and combines contributions for weights of the given specs. Contributions
// are ordered by peer before anything is summed, so every replica that aggregates the same set
// gets the same bits.
func (a Aggregator) Aggregate(specs []layers.ParamSpec, cs []Contribution) (*Result, error) {
	res := &Result{Excluded: map[string]string{}}
	cs = slices.Clone(cs)
	sort.Slice(cs, func(i, j int) bool { return cs[i].Peer < cs[j].Peer })
	var ok []Contribution
	for i, c := range cs {
		if i > 0 && c.Peer == cs[i-1].Peer {
			res.Excluded[c.Peer] = "sent more than one contribution"
			continue
		}
		if c.Grad == nil {
			res.Excluded[c.Peer] = "empty contribution"
			continue
		}
		if err := c.Grad.Check(specs); err != nil {
			res.Excluded[c.Peer] = err.Error()
			continue
		}
		ok = append(ok, c)
	}
	// Duplicates are excluded entirely: which copy is honest cannot be told.
	ok = slices.DeleteFunc(ok, func(c Contribution) bool { _, dup := res.Excluded[c.Peer]; return dup })
	if a.OutlierFactor > 0 && len(ok) >= 3 {
		norms := make([]float64, len(ok))
		for i, c := range ok {
			norms[i] = Norm(c.Grad)
		}
		var kept []Contribution
		for i, c := range ok {
			others := append(slices.Clone(norms[:i]), norms[i+1:]...)
			slices.Sort(others)
			med := others[len(others)/2]
			if len(others)%2 == 0 {
				med = (others[len(others)/2-1] + others[len(others)/2]) / 2
			}
			if med > 0 && norms[i] > a.OutlierFactor*med {
				res.Excluded[c.Peer] = fmt.Sprintf("norm %.3g is over %gx the median of the others (%.3g)", norms[i], a.OutlierFactor, med)
				continue
			}
			kept = append(kept, c)
		}
		ok = kept
	}
	if a.OutlierFactor > 0 && len(ok) == 2 {
		// Two contributions have no majority to compare with; a scaled-up one is the harmful
		// kind (it moves the weights), so the larger is left out when it is over the factor
		// times the other. The rule looks at the contributions alone, not at who aggregates,
		// so every replica that recomputes the round reaches the same set.
		n0, n1 := Norm(ok[0].Grad), Norm(ok[1].Grad)
		big, small, nb, ns := 0, 1, n0, n1
		if n1 > n0 {
			big, small, nb, ns = 1, 0, n1, n0
		}
		if ns > 0 && nb > a.OutlierFactor*ns {
			res.Excluded[ok[big].Peer] = fmt.Sprintf("norm %.3g is over %gx the other contribution's (%.3g)", nb, a.OutlierFactor, ns)
			ok = []Contribution{ok[small]}
		}
	}
	if len(ok) == 0 {
		return nil, fmt.Errorf("%w: no valid contribution among %d", ErrRejected, len(cs))
	}
	out := &layers.Params{Specs: slices.Clone(specs), Values: make([][]float32, len(specs))}
	trim := 0
	if a.Method == TrimmedMean && len(ok) >= 3 {
		trim = max(1, int(a.TrimFraction*float64(len(ok))))
		if 2*trim >= len(ok) {
			trim = (len(ok) - 1) / 2
		}
	}
	col := make([]float64, len(ok))
	for i, s := range specs {
		v := make([]float32, s.Size())
		for j := range v {
			if trim == 0 {
				sum := 0.0
				for _, c := range ok {
					sum += float64(c.Grad.Values[i][j])
				}
				v[j] = float32(sum / float64(len(ok)))
				continue
			}
			for k, c := range ok {
				col[k] = float64(c.Grad.Values[i][j])
			}
			slices.Sort(col)
			sum := 0.0
			for _, x := range col[trim : len(col)-trim] {
				sum += x
			}
			v[j] = float32(sum / float64(len(col)-2*trim))
		}
		out.Values[i] = v
	}
	res.Grad = out
	for _, c := range ok {
		res.Used = append(res.Used, c.Peer)
	}
	return res, nil
}
