package httpapi

import (
	"crypto/sha256"
	"crypto/subtle"
	"net/http"
	"strings"

	"github.com/labstack/echo/v4"
	"github.com/neuroshard/neuroshard/httpapi/apitypes"
)

// requireToken checks "Authorization: Bearer <token>". Both sides are hashed before the
// constant-time comparison so neither the content nor the length of the token leaks in timing.
func requireToken(token string) echo.MiddlewareFunc {
	want := sha256.Sum256([]byte(token))
	return func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c echo.Context) error {
			h := c.Request().Header.Get(echo.HeaderAuthorization)
			scheme, got, ok := strings.Cut(h, " ")
			if h == "" || !ok || !strings.EqualFold(scheme, "Bearer") {
				c.Response().Header().Set(echo.HeaderWWWAuthenticate, `Bearer realm="neuroshard"`)
				return apitypes.NewError(http.StatusUnauthorized, apitypes.CodeUnauthorized, "Missing API token: send Authorization: Bearer <token>", nil)
			}
			sum := sha256.Sum256([]byte(strings.TrimSpace(got)))
			if subtle.ConstantTimeCompare(sum[:], want[:]) != 1 {
				c.Response().Header().Set(echo.HeaderWWWAuthenticate, `Bearer realm="neuroshard", error="invalid_token"`)
				return apitypes.NewError(http.StatusUnauthorized, apitypes.CodeUnauthorized, "Invalid or expired API token", nil)
			}
			return next(c)
		}
	}
}
