// Package httpapi serves the node's REST API with echo: routes, authentication, rate limits and
// the error format of seed 003. It holds no state beyond request plumbing: every answer comes
// from a Backend, which the node implements.
package httpapi

import (
	"errors"
	"fmt"
	"log/slog"
	"net/http"

	"github.com/labstack/echo/v4"
)

func logger() *slog.Logger { return slog.Default().With("pkg", "httpapi") }

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

// errorHandler renders every error, echo's own included, in the seed's format.
func errorHandler(err error, c echo.Context) {
	if c.Response().Committed {
		return
	}
	apiErr := toAPIError(err)
	switch {
	case apiErr.Status == http.StatusInternalServerError:
		logger().Error("request failed", "method", c.Request().Method, "path", c.Path(), "err", err)
	case apiErr.Status > 500:
		logger().Warn("request refused", "method", c.Request().Method, "path", c.Path(), "err", err)
	}
	if c.Request().Method == http.MethodHead {
		_ = c.NoContent(apiErr.Status)
		return
	}
	_ = c.JSON(apiErr.Status, ErrorBody{Error: apiErr})
}

func toAPIError(err error) *Error {
	var apiErr *Error
	if errors.As(err, &apiErr) {
		return apiErr
	}
	var he *echo.HTTPError
	if errors.As(err, &he) {
		msg := fmt.Sprint(he.Message)
		switch he.Code {
		case http.StatusNotFound:
			return NotFound("no such endpoint", nil)
		case http.StatusMethodNotAllowed:
			return NewError(he.Code, CodeInvalidRequest, "method not allowed on this endpoint", nil)
		case http.StatusRequestEntityTooLarge:
			return NewError(he.Code, CodeInvalidRequest, "request body too large", map[string]any{"limit_bytes": maxBodyBytes})
		case http.StatusUnauthorized:
			return NewError(he.Code, CodeUnauthorized, msg, nil)
		case http.StatusTooManyRequests:
			return NewError(he.Code, CodeRateLimited, msg, nil)
		}
		if he.Code >= 400 && he.Code < 500 {
			return NewError(he.Code, CodeInvalidRequest, msg, nil)
		}
	}
	return NewError(http.StatusInternalServerError, CodeInternal, "internal error", nil)
}
