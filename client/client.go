package client

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/neuroshard/neuroshard/httpapi/apitypes"
)

// DefaultAPI is the address of a node started with default flags.
const DefaultAPI = "http://127.0.0.1:8000"

// maxResponseBytes bounds how much of an answer the client reads.
const maxResponseBytes = 32 << 20

// APIError is an error answer from the node, in the seed's format.
type APIError struct {
	Status  int
	Code    string
	Message string
	Details map[string]any
}

func (e *APIError) Error() string {
	return fmt.Sprintf("%s (HTTP %d): %s", e.Code, e.Status, e.Message)
}

// Client is a REST API client for one node.
type Client struct {
	base  string
	token string
	hc    *http.Client
}

// New makes a client for the node at baseURL (e.g. http://127.0.0.1:8000) with an API token.
func New(baseURL, token string) *Client {
	return &Client{base: strings.TrimRight(baseURL, "/"), token: token, hc: &http.Client{Timeout: 60 * time.Second}}
}

// Do sends a request with a JSON body (nil for none; an io.Reader is sent as it is) and decodes a JSON answer into out (nil to
// discard). An error answer comes back as *APIError.
func (c *Client) Do(ctx context.Context, method, path string, body, out any) error {
	var rd io.Reader
	if r, ok := body.(io.Reader); ok { // sent as it is
		rd = r
	} else if body != nil {
		raw, err := json.Marshal(body)
		if err != nil {
			return err
		}
		rd = bytes.NewReader(raw)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, rd)
	if err != nil {
		return err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return fmt.Errorf("cannot reach the node at %s (is it running? see --api): %w", c.base, err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, maxResponseBytes))
	if err != nil {
		return err
	}
	if resp.StatusCode >= 400 {
		var eb struct {
			Error *APIError `json:"error"`
		}
		if json.Unmarshal(raw, &eb) == nil && eb.Error != nil {
			eb.Error.Status = resp.StatusCode
			return eb.Error
		}
		return &APIError{Status: resp.StatusCode, Code: "HTTP_" + strconv.Itoa(resp.StatusCode), Message: strings.TrimSpace(string(raw))}
	}
	if out == nil {
		return nil
	}
	if err := json.Unmarshal(raw, out); err != nil {
		return fmt.Errorf("decode answer of %s %s: %w", method, path, err)
	}
	return nil
}

func get[T any](ctx context.Context, c *Client, path string) (T, error) {
	var out T
	err := c.Do(ctx, http.MethodGet, path, nil, &out)
	return out, err
}

// IsCode reports whether err is an API error with the given code.
func IsCode(err error, code string) bool {
	var ae *APIError
	return errors.As(err, &ae) && ae.Code == code
}

// Health is GET /api/v1/health (public); an unhealthy node answers 503 with the same body.
func (c *Client) Health(ctx context.Context) (apitypes.Health, error) {
	return get[apitypes.Health](ctx, c, "/api/v1/health")
}

// Status is GET /api/v1/status.
func (c *Client) Status(ctx context.Context) (apitypes.Status, error) {
	return get[apitypes.Status](ctx, c, "/api/v1/status")
}

// Peers is GET /api/v1/peers.
func (c *Client) Peers(ctx context.Context) (apitypes.PeerList, error) {
	return get[apitypes.PeerList](ctx, c, "/api/v1/peers")
}

// Layers is GET /api/v1/layers.
func (c *Client) Layers(ctx context.Context) (apitypes.LayerList, error) {
	return get[apitypes.LayerList](ctx, c, "/api/v1/layers")
}

// Network is GET /api/v1/network.
func (c *Client) Network(ctx context.Context) (apitypes.Network, error) {
	return get[apitypes.Network](ctx, c, "/api/v1/network")
}

// Config is GET /api/v1/config.
func (c *Client) Config(ctx context.Context) (apitypes.NodeConfig, error) {
	return get[apitypes.NodeConfig](ctx, c, "/api/v1/config")
}

// PatchConfig is PATCH /api/v1/config.
func (c *Client) PatchConfig(ctx context.Context, p apitypes.ConfigPatch) (apitypes.ConfigPatchResult, error) {
	var out apitypes.ConfigPatchResult
	err := c.Do(ctx, http.MethodPatch, "/api/v1/config", p, &out)
	return out, err
}

// RoutingTable is GET /api/v1/dht/routing-table.
func (c *Client) RoutingTable(ctx context.Context) (apitypes.RoutingTable, error) {
	return get[apitypes.RoutingTable](ctx, c, "/api/v1/dht/routing-table")
}

// Providers is GET /api/v1/dht/providers/{layer}.
func (c *Client) Providers(ctx context.Context, layer int) (apitypes.Providers, error) {
	return get[apitypes.Providers](ctx, c, "/api/v1/dht/providers/"+strconv.Itoa(layer))
}

// FindPeer is GET /api/v1/dht/peers/{id}.
func (c *Client) FindPeer(ctx context.Context, id string) (apitypes.PeerAddrs, error) {
	return get[apitypes.PeerAddrs](ctx, c, "/api/v1/dht/peers/"+id)
}

// Coverage is GET /api/v1/dht/coverage.
func (c *Client) Coverage(ctx context.Context) (apitypes.Coverage, error) {
	return get[apitypes.Coverage](ctx, c, "/api/v1/dht/coverage")
}
