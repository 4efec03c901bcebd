// Package tasks keeps the node's task queue (the task-style API): tasks are stored in a
// badger database before they are acknowledged, run by priority (critical, high, standard;
// first come first served within a priority), survive restarts, and can be cancelled while
// queued or running.
package tasks
