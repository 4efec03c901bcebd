package httpapi

import (
	"errors"
	"fmt"
	"log/slog"
	"net/http"

	"github.com/labstack/echo/v4"
	"github.com/neuroshard/neuroshard/httpapi/apitypes"
)

func logger() *slog.Logger { return slog.Default().With("pkg", "httpapi") }

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
	_ = c.JSON(apiErr.Status, apitypes.ErrorBody{Error: apiErr})
}

func toAPIError(err error) *apitypes.Error {
	var apiErr *apitypes.Error
	if errors.As(err, &apiErr) {
		return apiErr
	}
	var he *echo.HTTPError
	if errors.As(err, &he) {
		msg := fmt.Sprint(he.Message)
		switch he.Code {
		case http.StatusNotFound:
			return apitypes.NotFound("no such endpoint", nil)
		case http.StatusMethodNotAllowed:
			return apitypes.NewError(he.Code, apitypes.CodeInvalidRequest, "method not allowed on this endpoint", nil)
		case http.StatusRequestEntityTooLarge:
			return apitypes.NewError(he.Code, apitypes.CodeInvalidRequest, "request body too large", map[string]any{"limit_bytes": maxBodyBytes})
		case http.StatusUnauthorized:
			return apitypes.NewError(he.Code, apitypes.CodeUnauthorized, msg, nil)
		case http.StatusTooManyRequests:
			return apitypes.NewError(he.Code, apitypes.CodeRateLimited, msg, nil)
		}
		if he.Code >= 400 && he.Code < 500 {
			return apitypes.NewError(he.Code, apitypes.CodeInvalidRequest, msg, nil)
		}
	}
	return apitypes.NewError(http.StatusInternalServerError, apitypes.CodeInternal, "internal error", nil)
}
