package nodeapi

import "github.com/neuroshard/neuroshard/httpapi"

// The backend answers every question of the REST API.
var _ httpapi.Backend = (*API)(nil)
