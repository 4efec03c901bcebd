package httpapi

import (
	"crypto/sha256"
	"crypto/subtle"
	"net/http"
	"strings"

	"github.com/labstack/echo/v4"
	"github.com/neuroshard/neuroshard/httpapi/apitypes"
)

// bearer is the token a request presents ("" if none).
func bearer(c echo.Context) (string, bool) {
	h := c.Request().Header.Get(echo.HeaderAuthorization)
	scheme, got, ok := strings.Cut(h, " ")
	if h == "" || !ok || !strings.EqualFold(scheme, "Bearer") {
		return "", false
	}
	return strings.TrimSpace(got), true
}

// tokenMatches compares a presented token with the node's. Both sides are hashed before the
// constant-time comparison so neither the content nor the length of the token leaks in timing.
func tokenMatches(want [32]byte, got string) bool {
	sum := sha256.Sum256([]byte(got))
	return subtle.ConstantTimeCompare(sum[:], want[:]) == 1
}

// rateKey is whose budget a request spends: the token's when it presents the node's token,
// else its address's (anonymous calls and failed attempts never spend the owner's budget).
func rateKey(want [32]byte) func(echo.Context) string {
	return func(c echo.Context) string {
		if got, ok := bearer(c); ok && tokenMatches(want, got) {
			return "token"
		}
		return "ip:" + c.RealIP()
	}
}

// requireToken checks "Authorization: Bearer <token>".
func requireToken(token string) echo.MiddlewareFunc {
	want := sha256.Sum256([]byte(token))
	return func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c echo.Context) error {
			got, ok := bearer(c)
			if !ok {
				c.Response().Header().Set(echo.HeaderWWWAuthenticate, `Bearer realm="neuroshard"`)
				return apitypes.NewError(http.StatusUnauthorized, apitypes.CodeUnauthorized, "Missing API token: send Authorization: Bearer <token>", nil)
			}
			if !tokenMatches(want, got) {
				c.Response().Header().Set(echo.HeaderWWWAuthenticate, `Bearer realm="neuroshard", error="invalid_token"`)
				return apitypes.NewError(http.StatusUnauthorized, apitypes.CodeUnauthorized, "Invalid or expired API token", nil)
			}
			return next(c)
		}
	}
}
