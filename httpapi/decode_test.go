package httpapi

import (
	"encoding/json"
	"errors"
	"reflect"
	"testing"

	"github.com/neuroshard/neuroshard/httpapi/apitypes"
)

func TestDecodeStrict(t *testing.T) {
	for _, tc := range []struct {
		body  string
		ok    bool
		field string
	}{
		{`{"training": {"batch_size": 4}}`, true, ""},
		{`{"resources": {"max_memory_gb": 2.5, "cpu_threads": 2}}`, true, ""},
		{`{"training": {"batch_size": "4"}}`, false, "training.batch_size"},
		{`{"training": {"batch_size": 4.5}}`, false, "training.batch_size"},
		{`{"training": {"enabled": 1}}`, false, "training.enabled"},
		{`{"training": []}`, false, "training"},
		{`{"trainng": {}}`, false, "trainng"},
		{`{"training": {"batch_size": 4}} x`, false, ""},
		{`{"training": `, false, ""},
		{`   `, false, ""},
		{`null`, true, ""},
	} {
		var p apitypes.ConfigPatch
		err := DecodeStrict([]byte(tc.body), &p)
		if tc.ok {
			if err != nil {
				t.Errorf("%s: %v", tc.body, err)
			}
			continue
		}
		var apiErr *apitypes.Error
		if !errors.As(err, &apiErr) || apiErr.Code != apitypes.CodeInvalidRequest || apiErr.Status != 400 {
			t.Errorf("%s: want INVALID_REQUEST, got %v", tc.body, err)
			continue
		}
		if tc.field != "" && apiErr.Details["field"] != tc.field {
			t.Errorf("%s: error names field %v, want %s (%s)", tc.body, apiErr.Details["field"], tc.field, apiErr.Message)
		}
	}
}

// FuzzDecodeConfigPatch: any body either fails with INVALID_REQUEST or decodes to a patch that
// survives a JSON round trip unchanged.
func FuzzDecodeConfigPatch(f *testing.F) {
	for _, s := range []string{`{"training": {"batch_size": 4, "enabled": true}}`, `{"resources": {"max_memory_gb": 1e3}}`, `{`, `[]`, `{"a":1}`, `""`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		var p apitypes.ConfigPatch
		err := DecodeStrict(body, &p)
		if err != nil {
			var apiErr *apitypes.Error
			if !errors.As(err, &apiErr) || apiErr.Code != apitypes.CodeInvalidRequest {
				t.Fatalf("error is not INVALID_REQUEST: %v", err)
			}
			return
		}
		raw, err := json.Marshal(p)
		if err != nil {
			t.Fatal(err)
		}
		var q apitypes.ConfigPatch
		if err := DecodeStrict(raw, &q); err != nil {
			t.Fatalf("re-decoding %s: %v", raw, err)
		}
		if !reflect.DeepEqual(p, q) {
			t.Fatalf("round trip changed the patch: %+v -> %+v", p, q)
		}
	})
}

// FuzzDecodeInferenceRequest: any body either fails with INVALID_REQUEST or decodes to a
// request that survives a JSON round trip unchanged.
func FuzzDecodeInferenceRequest(f *testing.F) {
	for _, s := range []string{`{"prompt": "hi", "max_tokens": 5, "temperature": 0.7, "top_p": 0.9, "top_k": 40, "stream": true, "stop": ["\n"]}`, `{"prompt": 1}`, `{"stop": [1]}`, `{"seed": -1}`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		var r apitypes.InferenceRequest
		err := DecodeStrict(body, &r)
		if len(r.Stop) == 0 {
			r.Stop = nil // an empty list and no list mean the same: no stop sequences
		}
		if err != nil {
			var apiErr *apitypes.Error
			if !errors.As(err, &apiErr) || apiErr.Code != apitypes.CodeInvalidRequest {
				t.Fatalf("error is not INVALID_REQUEST: %v", err)
			}
			return
		}
		raw, err := json.Marshal(r)
		if err != nil {
			t.Fatal(err)
		}
		var q apitypes.InferenceRequest
		if err := DecodeStrict(raw, &q); err != nil || !reflect.DeepEqual(r, q) {
			t.Fatalf("round trip of %s: %+v -> %+v (%v)", raw, r, q, err)
		}
	})
}

// The wallet endpoints' bodies: any input is either refused as INVALID_REQUEST or decodes to
// a value that survives a round trip exactly (amounts included: no float rounding).
func FuzzDecodeWalletRequests(f *testing.F) {
	for _, s := range []string{`{"to": "0x00112233445566778899aabbccddeeff00112233", "amount": 100.5, "memo": "hi"}`,
		`{"amount": 10000.0, "duration_days": 30}`, `{"amount": "5"}`, `{"amount": 1e3}`, `{"amount": 0.0000001}`, `{"amount": -1}`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		roundTrip(t, body, &apitypes.SendRequest{}, func() any { return &apitypes.SendRequest{} })
		roundTrip(t, body, &apitypes.StakeRequest{}, func() any { return &apitypes.StakeRequest{} })
		roundTrip(t, body, &apitypes.UnstakeRequest{}, func() any { return &apitypes.UnstakeRequest{} })
	})
}

func roundTrip(t *testing.T, body []byte, v any, fresh func() any) {
	if err := DecodeStrict(body, v); err != nil {
		var apiErr *apitypes.Error
		if !errors.As(err, &apiErr) || apiErr.Code != apitypes.CodeInvalidRequest {
			t.Fatalf("error is not INVALID_REQUEST: %v", err)
		}
		return
	}
	raw, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	q := fresh()
	if err := DecodeStrict(raw, q); err != nil || !reflect.DeepEqual(v, q) {
		t.Fatalf("round trip of %s: %+v -> %+v (%v)", raw, v, q, err)
	}
}
