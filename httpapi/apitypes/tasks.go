package apitypes

import "github.com/neuroshard/neuroshard/ledger/neuro"

// TaskRequest is POST /api/tasks.
type TaskRequest struct {
	Prompt    *string `json:"prompt"`
	Model     string  `json:"model,omitempty"`    // default: the network's model
	Priority  string  `json:"priority,omitempty"` // standard (default), high, critical
	MaxTokens *int    `json:"max_tokens,omitempty"`
}

// TaskNode names the node that runs a task.
type TaskNode struct {
	ID string `json:"id"`
	// Location and GPU are null: nobody configures a node's location, and nodes run on CPU.
	Location *string `json:"location"`
	GPU      *string `json:"gpu"`
}

// TaskCost is a task's estimated cost in NEURO.
type TaskCost struct {
	Estimated neuro.Amount `json:"estimated"` // upper bound: every token up to max_tokens
	Currency  string       `json:"currency"`
	// Comparison is seed 000's price of the same task elsewhere: null, since the node knows
	// no other provider's price and does not make one up.
	Comparison *CostComparison `json:"comparison"`
}

// CostComparison is seed 000's cost comparison (never filled: see TaskCost.Comparison).
type CostComparison struct {
	OpenAI  string `json:"openai"`
	Savings string `json:"savings"`
}

// TaskSubmitted answers POST /api/tasks.
type TaskSubmitted struct {
	Success       bool     `json:"success"`
	TaskID        string   `json:"task_id"`
	Status        string   `json:"status"`
	EstimatedTime string   `json:"estimated_time"`
	Position      int      `json:"position"` // tasks that run before it
	Node          TaskNode `json:"node"`
	Cost          TaskCost `json:"cost"`
	Message       string   `json:"message"`
}

// TaskView is a task as the API shows it.
type TaskView struct {
	ID             string       `json:"id"`
	Status         string       `json:"status"`
	Type           string       `json:"type"`
	Model          string       `json:"model"`
	Priority       string       `json:"priority"`
	Prompt         string       `json:"prompt"`
	Result         string       `json:"result,omitempty"`
	Error          string       `json:"error,omitempty"`
	CreatedAt      string       `json:"created_at"`
	StartedAt      string       `json:"started_at,omitempty"`
	CompletedAt    string       `json:"completed_at,omitempty"`
	ProcessingTime float64      `json:"processing_time,omitempty"` // seconds
	Cost           neuro.Amount `json:"cost"`
	TokensUsed     int          `json:"tokens_used"`
	Node           TaskNode     `json:"node"`
	NodeID         string       `json:"node_id"`
}

// TaskList is the data of GET /api/v1/tasks.
type TaskList struct {
	Tasks  []TaskView `json:"tasks"`
	Total  int        `json:"total"`
	Limit  int        `json:"limit"`
	Offset int        `json:"offset"`
}
