package apitypes

import (
	"fmt"
	"net/http"
)

// Error codes of seed 003, and the ones later seeds add.
const (
	CodeUnauthorized        = "UNAUTHORIZED"
	CodeForbidden           = "FORBIDDEN"
	CodeNotFound            = "NOT_FOUND"
	CodeRateLimited         = "RATE_LIMITED"
	CodeInsufficientBalance = "INSUFFICIENT_BALANCE"
	CodeInvalidRequest      = "INVALID_REQUEST"
	CodeInternal            = "INTERNAL_ERROR"
	CodeNodeUnavailable     = "NODE_UNAVAILABLE"
	CodeNotImplemented      = "NOT_IMPLEMENTED"
	CodeModelUnavailable    = "MODEL_UNAVAILABLE"
)

// Error is an API error: an HTTP status and the body {"error": {"code", "message", "details"}}.
// Backends return it to choose the status and code; any other error becomes a 500.
type Error struct {
	Status  int            `json:"-"`
	Code    string         `json:"code"`
	Message string         `json:"message"`
	Details map[string]any `json:"details,omitempty"`
}

func (e *Error) Error() string { return fmt.Sprintf("%s (%d): %s", e.Code, e.Status, e.Message) }

// ErrorBody is the JSON envelope of every error answer.
type ErrorBody struct {
	Error *Error `json:"error"`
}

// NewError builds an API error.
func NewError(status int, code, message string, details map[string]any) *Error {
	return &Error{Status: status, Code: code, Message: message, Details: details}
}

// InvalidRequest is a 400 INVALID_REQUEST error.
func InvalidRequest(message string, details map[string]any) *Error {
	return NewError(http.StatusBadRequest, CodeInvalidRequest, message, details)
}

// NotFound is a 404 NOT_FOUND error.
func NotFound(message string, details map[string]any) *Error {
	return NewError(http.StatusNotFound, CodeNotFound, message, details)
}
