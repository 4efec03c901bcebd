package apitypes

// Event is a live event pushed over the WebSocket (seed 002): task.started, task.progress,
// task.completed, task.failed, task.cancelled, node.status or system.alert.
type Event struct {
	Type      string `json:"type"`
	Data      any    `json:"data"`
	Timestamp string `json:"timestamp"`
}
