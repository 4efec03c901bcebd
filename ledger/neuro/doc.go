// Package neuro is the NEURO amount: integers of micro-NEURO inside, decimal numbers only at
// the JSON edge, parsed exactly (no float rounding). It depends on the standard library alone,
// so the API's types and its Go client can use it without linking the ledger.
package neuro
