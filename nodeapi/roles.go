package nodeapi

import (
	"context"

	"github.com/neuroshard/neuroshard/coverage"
	"github.com/neuroshard/neuroshard/httpapi/apitypes"
)

// Roles, after seed 001: a driver holds the embedding (layer 0) and takes requests in, a
// validator holds the LM head (the last layer) and computes the loss, a worker holds the middle.
// A node holding both ends is a driver: it can serve a request on its own.
const (
	RoleDriver    = "driver"
	RoleWorker    = "worker"
	RoleValidator = "validator"
)

func roleOf(layersHeld []int, total int) string {
	role := RoleWorker
	for _, l := range layersHeld {
		if l == 0 {
			return RoleDriver
		}
		if l == total-1 {
			role = RoleValidator
		}
	}
	return role
}

// Coverage returns who holds each layer, refreshed at most every CoverageInterval.
func (a *API) Coverage(ctx context.Context) apitypes.Coverage {
	return apiCoverage(a.cov.Get(ctx))
}

func apiCoverage(v coverage.View) apitypes.Coverage {
	out := apitypes.Coverage{Model: v.Model, Layers: make([]apitypes.LayerCoverage, len(v.Layers)), Missing: v.Missing, Complete: v.Complete}
	for i, l := range v.Layers {
		ids := make([]string, len(l.Providers))
		for j, p := range l.Providers {
			ids[j] = p.String()
		}
		out.Layers[i] = apitypes.LayerCoverage{Index: l.Index, Providers: ids, Replicas: l.Replicas}
	}
	return out
}
