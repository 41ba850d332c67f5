package httpx

import (
	"fmt"
	"net/http"
	"strconv"

	"github.com/scalelab/scalelab/internal/platform/apperr"
)

// ParseID reads a resource ID as the APIs print them (Snowflakes and other
// positive int64s in decimal): digits only, no sign, no leading zero, so
// that each ID has exactly one spelling. The error names the value,
// clipped, for a 400 message.
func ParseID(s string) (int64, error) {
	id, err := strconv.ParseInt(s, 10, 64)
	if err != nil || id <= 0 || s[0] == '0' || s[0] == '+' {
		if len(s) > 40 {
			s = s[:40] + "…"
		}
		return 0, fmt.Errorf("%q is not a positive integer", s)
	}
	return id, nil
}

// PathID reads the {id} wildcard of r's route as an ID; on a malformed one
// it answers 400 (naming what the ID is of) and reports false.
func PathID(w http.ResponseWriter, r *http.Request, what string) (int64, bool) {
	id, err := ParseID(r.PathValue("id"))
	if err != nil {
		WriteError(w, r, apperr.E(apperr.Invalid, "%s ID: %v", what, err))
		return 0, false
	}
	return id, true
}
