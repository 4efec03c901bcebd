package tasks

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"time"
)

// Errors of the queue.
var (
	ErrNotFound = errors.New("tasks: no such task")
	ErrFinished = errors.New("tasks: the task already finished")
	ErrClosed   = errors.New("tasks: queue closed")
	ErrFull     = errors.New("tasks: queue full")
	ErrInvalid  = errors.New("tasks: invalid task")
)

// Priority orders the queue.
type Priority string

// Priorities, lowest first.
const (
	Standard Priority = "standard"
	High     Priority = "high"
	Critical Priority = "critical"
)

func (p Priority) rank() int {
	switch p {
	case Critical:
		return 2
	case High:
		return 1
	}
	return 0
}

// ParsePriority reads a priority; empty means standard.
func ParsePriority(s string) (Priority, error) {
	switch Priority(s) {
	case "", Standard:
		return Standard, nil
	case High, Critical:
		return Priority(s), nil
	}
	return "", fmt.Errorf("%w: priority %q (want standard, high or critical)", ErrInvalid, s)
}

// Status is where a task is in its life.
type Status string

// Statuses.
const (
	Queued    Status = "queued"
	Running   Status = "running"
	Completed Status = "completed"
	Failed    Status = "failed"
	Cancelled Status = "cancelled"
)

// Finished reports whether the status is final.
func (s Status) Finished() bool { return s == Completed || s == Failed || s == Cancelled }

// Task is one unit of work and, when done, its result.
type Task struct {
	ID          string     `json:"id"`
	Seq         uint64     `json:"seq"` // submission order on this node
	Prompt      string     `json:"prompt"`
	Model       string     `json:"model"`
	Priority    Priority   `json:"priority"`
	MaxTokens   int        `json:"max_tokens"`
	Status      Status     `json:"status"`
	CreatedAt   time.Time  `json:"created_at"`
	StartedAt   *time.Time `json:"started_at,omitempty"`
	CompletedAt *time.Time `json:"completed_at,omitempty"`
	Result      string     `json:"result,omitempty"`
	Error       string     `json:"error,omitempty"`
	TokensUsed  int        `json:"tokens_used"`
	Cost        int64      `json:"cost_micro"` // micro-NEURO paid for it
	Node        string     `json:"node,omitempty"`
	Attempts    int        `json:"attempts"` // runs started (a restart mid-run re-queues it)
}

// Outcome is what running a task produced.
type Outcome struct {
	Text       string
	TokensUsed int
	Cost       int64
	Node       string
}

func newID(now time.Time) string {
	var b [4]byte
	rand.Read(b[:])
	return "task_" + strconv.FormatInt(now.Unix(), 10) + "_" + hex.EncodeToString(b[:])
}
