package layers

import (
	"errors"
	"fmt"
)

// Finish reasons, as in seed 001.
const (
	FinishStop   = "stop"   // EOS or a stop sequence
	FinishLength = "length" // max_tokens or the context was reached
)

// Pipeline runs one sequence through local stages that together cover the model, each with
// its own session (KV cache). Remote stages plug in the same way in the node's inference path.
type Pipeline struct {
	sessions []*Session
}

// NewPipeline opens a batch-1 session on each stage; the stages must cover 0..L-1 in order.
func NewPipeline(stages []*Stage) (*Pipeline, error) { return NewPipelineBatch(stages, 1) }

// NewPipelineBatch opens a session of the given batch on each stage: that many sequences step
// together (StepBatch).
func NewPipelineBatch(stages []*Stage, batch int) (*Pipeline, error) {
	if len(stages) == 0 {
		return nil, errors.New("layers: no stages")
	}
	next := 0
	p := &Pipeline{}
	for _, st := range stages {
		if st.span.First != next {
			p.Close()
			return nil, fmt.Errorf("%w: stages do not cover the model in order (span %s after layer %d)", ErrInvalidSpan, st.span, next-1)
		}
		ss, err := st.NewSession(batch)
		if err != nil {
			p.Close()
			return nil, err
		}
		p.sessions = append(p.sessions, ss)
		next = st.span.Last + 1
	}
	if next != stages[0].cfg.Layers {
		p.Close()
		return nil, fmt.Errorf("%w: stages end at layer %d of %d", ErrInvalidSpan, next-1, stages[0].cfg.Layers)
	}
	return p, nil
}

// Step feeds new tokens and returns the logits of the last of them.
func (p *Pipeline) Step(tokens []int32) ([]float32, error) {
	x := NewI32(tokens, 1, len(tokens))
	for _, ss := range p.sessions {
		out, err := ss.Step(x)
		if err != nil {
			return nil, err
		}
		x = out
	}
	v := x.Dims[2]
	return x.F32[(len(tokens)-1)*v:], nil
}

// StepBatch feeds tokens [batch, T] and returns the last stage's output for them (logits
// [batch, T, vocab]).
func (p *Pipeline) StepBatch(tokens *Tensor) (*Tensor, error) {
	x := tokens
	for _, ss := range p.sessions {
		out, err := ss.Step(x)
		if err != nil {
			return nil, err
		}
		x = out
	}
	return x, nil
}

// Close frees every session.
func (p *Pipeline) Close() {
	for _, ss := range p.sessions {
		ss.Close()
	}
}

// Generate continues prompt (token IDs, BOS included) with the sampling settings, calling
// onToken for each new token; it returns the new tokens and the finish reason. Generation
// stops at EOS, a stop sequence, max_tokens or the end of the context.
func Generate(stepper interface {
	Step([]int32) ([]float32, error)
}, ctx int, prompt []int32, s Sampling, onToken func(id int32) error) ([]int32, string, error) {
	sm, err := NewSampler(s)
	if err != nil {
		return nil, "", err
	}
	if len(prompt) == 0 || len(prompt) >= ctx {
		return nil, "", fmt.Errorf("%w: prompt of %d tokens for a context of %d", ErrBadInput, len(prompt), ctx)
	}
	logits, err := stepper.Step(prompt)
	if err != nil {
		return nil, "", err
	}
	var out []int32
	for {
		id := sm.Next(logits)
		if id == EOS {
			return out, FinishStop, nil
		}
		out = append(out, id)
		if onToken != nil {
			if err := onToken(id); err != nil {
				return out, "", err
			}
		}
		if _, stop := s.StopAt(Decode(out)); stop {
			return out, FinishStop, nil
		}
		if len(out) >= s.MaxTokens || len(prompt)+len(out) >= ctx {
			return out, FinishLength, nil
		}
		if logits, err = stepper.Step([]int32{id}); err != nil {
			return out, "", err
		}
	}
}
