package neuro

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// ErrAmount is returned for an amount that is malformed, negative, too precise or too large.
var ErrAmount = errors.New("bad NEURO amount")

// Micro is the number of micro-NEURO in one NEURO.
const Micro = 1_000_000

// MaxAmount bounds any single amount: 10^12 NEURO, far below int64's range, so sums of a few
// amounts cannot overflow.
const MaxAmount Amount = 1_000_000_000_000 * Micro

// Amount is a quantity of NEURO in micro-NEURO.
type Amount int64

// ParseAmount parses a non-negative decimal such as "100", "0.1" or "12345.678901" exactly.
// More than 6 decimal places, exponents, signs, NaN and values above MaxAmount are refused.
func ParseAmount(s string) (Amount, error) {
	if s == "" || len(s) > 32 {
		return 0, fmt.Errorf("%w: %q", ErrAmount, s)
	}
	whole, frac, hasDot := strings.Cut(s, ".")
	if whole == "" || hasDot && frac == "" || len(frac) > 6 || !digits(whole) || !digits(frac) {
		return 0, fmt.Errorf("%w: %q (a decimal number with at most 6 decimal places)", ErrAmount, s)
	}
	w, err := strconv.ParseInt(whole, 10, 64)
	if err != nil || w > int64(MaxAmount/Micro) {
		return 0, fmt.Errorf("%w: %q is too large", ErrAmount, s)
	}
	f := int64(0)
	if frac != "" {
		f, _ = strconv.ParseInt(frac+strings.Repeat("0", 6-len(frac)), 10, 64)
	}
	a := Amount(w*Micro + f)
	if a > MaxAmount {
		return 0, fmt.Errorf("%w: %q is too large", ErrAmount, s)
	}
	return a, nil
}

func digits(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

// String formats the amount as a decimal with no trailing zeros: "100", "0.1".
func (a Amount) String() string {
	neg := a < 0
	if neg {
		a = -a
	}
	s := strconv.FormatInt(int64(a/Micro), 10)
	if f := int64(a % Micro); f != 0 {
		s += "." + strings.TrimRight(fmt.Sprintf("%06d", f), "0")
	}
	if neg {
		s = "-" + s
	}
	return s
}

// MarshalJSON writes the amount as a JSON number ("amount": 100.5), as the API reference shows.
func (a Amount) MarshalJSON() ([]byte, error) { return []byte(a.String()), nil }

// UnmarshalJSON reads a JSON number exactly (not through float64). A negative number (as a
// history shows what left an account) is read too; whoever takes an amount as input checks
// its sign.
func (a *Amount) UnmarshalJSON(b []byte) error {
	s, neg := strings.CutPrefix(string(b), "-")
	v, err := ParseAmount(s)
	if err != nil {
		return err
	}
	if neg {
		v = -v
	}
	*a = v
	return nil
}

// Float is the amount in NEURO, for display and metrics only.
func (a Amount) Float() float64 { return float64(a) / Micro }

// Add returns a + b, refusing a result past MaxAmount (or below -MaxAmount).
func (a Amount) Add(b Amount) (Amount, error) {
	s := a + b
	if s > MaxAmount || s < -MaxAmount || (b > 0 && s < a) || (b < 0 && s > a) {
		return 0, fmt.Errorf("%w: %s + %s overflows", ErrAmount, a, b)
	}
	return s, nil
}
