package httpapi

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"

	"github.com/labstack/echo/v4"
	"github.com/neuroshard/neuroshard/httpapi/apitypes"
)

// maxBodyBytes caps every request body; larger ones get 413 before a handler runs.
const maxBodyBytes = 1 << 20

// decodeJSON decodes a request body strictly: one JSON object, no unknown fields, no trailing
// data, every field of the right type. The error names the field and what was wrong.
func decodeJSON(c echo.Context, v any) error { return decodeBody(c, v, DecodeStrict) }

// decodeLenient reads a body like decodeJSON but ignores fields it does not know: the
// OpenAI-compatible endpoints take requests from clients that send options this node has no
// use for (logit_bias, user, ...). Known fields are still type-checked.
func decodeLenient(c echo.Context, v any) error { return decodeBody(c, v, DecodeLenient) }

func decodeBody(c echo.Context, v any, decode func([]byte, any) error) error {
	ct := c.Request().Header.Get(echo.HeaderContentType)
	if ct != "" && !strings.HasPrefix(ct, echo.MIMEApplicationJSON) {
		return apitypes.InvalidRequest("Content-Type must be application/json", map[string]any{"content_type": ct})
	}
	body, err := io.ReadAll(io.LimitReader(c.Request().Body, maxBodyBytes+1))
	if err != nil {
		if errors.Is(err, os.ErrDeadlineExceeded) {
			return apitypes.NewError(http.StatusRequestTimeout, apitypes.CodeInvalidRequest, "the request body did not arrive in time",
				map[string]any{"min_bytes_per_second": BodyMinRate})
		}
		return apitypes.InvalidRequest("could not read request body", nil)
	}
	if len(body) > maxBodyBytes {
		return apitypes.NewError(413, apitypes.CodeInvalidRequest, "request body too large", map[string]any{"limit_bytes": maxBodyBytes})
	}
	return decode(body, v)
}

// DecodeStrict decodes one JSON object into v, refusing unknown fields, wrong types and
// trailing data, and returns an *Error that names the offending field.
func DecodeStrict(body []byte, v any) error { return decode(body, v, true) }

// DecodeLenient is DecodeStrict without the refusal of unknown fields.
func DecodeLenient(body []byte, v any) error { return decode(body, v, false) }

func decode(body []byte, v any, strict bool) error {
	if len(bytes.TrimSpace(body)) == 0 {
		return apitypes.InvalidRequest("request body is empty; a JSON object is required", nil)
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	if strict {
		dec.DisallowUnknownFields()
	}
	if err := dec.Decode(v); err != nil {
		return jsonError(err)
	}
	if dec.More() {
		return apitypes.InvalidRequest("request body has data after the JSON object", nil)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return apitypes.InvalidRequest("request body has data after the JSON object", nil)
	}
	return nil
}

func jsonError(err error) *apitypes.Error {
	var typeErr *json.UnmarshalTypeError
	var syntaxErr *json.SyntaxError
	switch {
	case errors.As(err, &typeErr):
		field := typeErr.Field
		if field == "" {
			field = "(body)"
		}
		return apitypes.InvalidRequest(fmt.Sprintf("field %q must be %s, not %s", field, typeErr.Type.String(), typeErr.Value),
			map[string]any{"field": field, "expected": typeErr.Type.String(), "got": typeErr.Value})
	case errors.As(err, &syntaxErr):
		return apitypes.InvalidRequest("malformed JSON: "+syntaxErr.Error(), map[string]any{"offset": syntaxErr.Offset})
	case strings.HasPrefix(err.Error(), "json: unknown field "):
		field := strings.Trim(strings.TrimPrefix(err.Error(), "json: unknown field "), `"`)
		return apitypes.InvalidRequest(fmt.Sprintf("unknown field %q", field), map[string]any{"field": field})
	case errors.Is(err, io.ErrUnexpectedEOF):
		return apitypes.InvalidRequest("malformed JSON: unexpected end of body", nil)
	}
	return apitypes.InvalidRequest("malformed JSON: "+err.Error(), nil)
}
