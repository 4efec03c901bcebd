package client

import (
	"context"
	"fmt"
	"net/http"

	"github.com/neuroshard/neuroshard/httpapi/apitypes"
)

// post sends a JSON body and decodes the answer.
func post[T any](ctx context.Context, c *Client, path string, body any) (T, error) {
	var out T
	err := c.Do(ctx, http.MethodPost, path, body, &out)
	return out, err
}

// Balance is GET /api/v1/wallet/balance.
func (c *Client) Balance(ctx context.Context) (apitypes.WalletBalance, error) {
	return get[apitypes.WalletBalance](ctx, c, "/api/v1/wallet/balance")
}

// Send is POST /api/v1/wallet/send.
func (c *Client) Send(ctx context.Context, req apitypes.SendRequest) (apitypes.SendResult, error) {
	return post[apitypes.SendResult](ctx, c, "/api/v1/wallet/send", req)
}

// Transactions is GET /api/v1/wallet/transactions.
func (c *Client) Transactions(ctx context.Context, limit, offset int) (apitypes.TransactionList, error) {
	return get[apitypes.TransactionList](ctx, c, fmt.Sprintf("/api/v1/wallet/transactions?limit=%d&offset=%d", limit, offset))
}

// Stake is POST /api/v1/wallet/stake.
func (c *Client) Stake(ctx context.Context, req apitypes.StakeRequest) (apitypes.StakeResult, error) {
	return post[apitypes.StakeResult](ctx, c, "/api/v1/wallet/stake", req)
}

// Unstake is POST /api/v1/wallet/unstake.
func (c *Client) Unstake(ctx context.Context, req apitypes.UnstakeRequest) (apitypes.UnstakeResult, error) {
	return post[apitypes.UnstakeResult](ctx, c, "/api/v1/wallet/unstake", req)
}

// Proofs is GET /api/v1/proofs.
func (c *Client) Proofs(ctx context.Context, limit, offset int) (apitypes.ProofList, error) {
	return get[apitypes.ProofList](ctx, c, fmt.Sprintf("/api/v1/proofs?limit=%d&offset=%d", limit, offset))
}
