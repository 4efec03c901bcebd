package client

import (
	"context"
	"fmt"
	"net/http"

	"github.com/neuroshard/neuroshard/httpapi"
)

// post sends a JSON body and decodes the answer.
func post[T any](ctx context.Context, c *Client, path string, body any) (T, error) {
	var out T
	err := c.Do(ctx, http.MethodPost, path, body, &out)
	return out, err
}

// Balance is GET /api/v1/wallet/balance.
func (c *Client) Balance(ctx context.Context) (httpapi.WalletBalance, error) {
	return get[httpapi.WalletBalance](ctx, c, "/api/v1/wallet/balance")
}

// Send is POST /api/v1/wallet/send.
func (c *Client) Send(ctx context.Context, req httpapi.SendRequest) (httpapi.SendResult, error) {
	return post[httpapi.SendResult](ctx, c, "/api/v1/wallet/send", req)
}

// Transactions is GET /api/v1/wallet/transactions.
func (c *Client) Transactions(ctx context.Context, limit, offset int) (httpapi.TransactionList, error) {
	return get[httpapi.TransactionList](ctx, c, fmt.Sprintf("/api/v1/wallet/transactions?limit=%d&offset=%d", limit, offset))
}

// Stake is POST /api/v1/wallet/stake.
func (c *Client) Stake(ctx context.Context, req httpapi.StakeRequest) (httpapi.StakeResult, error) {
	return post[httpapi.StakeResult](ctx, c, "/api/v1/wallet/stake", req)
}

// Unstake is POST /api/v1/wallet/unstake.
func (c *Client) Unstake(ctx context.Context, req httpapi.UnstakeRequest) (httpapi.UnstakeResult, error) {
	return post[httpapi.UnstakeResult](ctx, c, "/api/v1/wallet/unstake", req)
}

// Proofs is GET /api/v1/proofs.
func (c *Client) Proofs(ctx context.Context, limit, offset int) (httpapi.ProofList, error) {
	return get[httpapi.ProofList](ctx, c, fmt.Sprintf("/api/v1/proofs?limit=%d&offset=%d", limit, offset))
}
