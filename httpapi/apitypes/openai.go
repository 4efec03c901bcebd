package apitypes

import "encoding/json"

// OpenAICompletionRequest is POST /v1/completions (the fields the node uses).
type OpenAICompletionRequest struct {
	Model       string          `json:"model"`
	Prompt      json.RawMessage `json:"prompt"` // a string or an array of one string
	MaxTokens   *int            `json:"max_tokens"`
	Temperature *float64        `json:"temperature"`
	TopP        *float64        `json:"top_p"`
	N           *int            `json:"n"`
	Stream      bool            `json:"stream"`
	Stop        json.RawMessage `json:"stop"` // a string or an array of strings
	Seed        *uint64         `json:"seed"`
	// StreamOptions.IncludeUsage asks a stream for a last chunk carrying the usage.
	StreamOptions *OpenAIStreamOptions `json:"stream_options"`
}

// OpenAIStreamOptions are a streamed request's options.
type OpenAIStreamOptions struct {
	IncludeUsage bool `json:"include_usage"`
}

// OpenAIChatRequest is POST /v1/chat/completions (the fields the node uses).
type OpenAIChatRequest struct {
	Model               string               `json:"model"`
	Messages            []OpenAIChatMessage  `json:"messages"`
	MaxTokens           *int                 `json:"max_tokens"`
	MaxCompletionTokens *int                 `json:"max_completion_tokens"`
	Temperature         *float64             `json:"temperature"`
	TopP                *float64             `json:"top_p"`
	N                   *int                 `json:"n"`
	Stream              bool                 `json:"stream"`
	Stop                json.RawMessage      `json:"stop"`
	Seed                *uint64              `json:"seed"`
	StreamOptions       *OpenAIStreamOptions `json:"stream_options"`
}

// WantsUsage tells whether a stream asked for its usage (stream_options.include_usage).
func (o *OpenAIStreamOptions) WantsUsage() bool { return o != nil && o.IncludeUsage }

// OpenAIChatMessage is one message; content is a string or an array of text parts.
type OpenAIChatMessage struct {
	Role    string          `json:"role"`
	Content json.RawMessage `json:"content"`
}
