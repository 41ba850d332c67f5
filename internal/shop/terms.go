package shop

import (
	"strings"
	"unicode"
	"unicode/utf8"
)

// The search index maps terms to product IDs. A product's terms are the
// words of its name (lower-cased letters and digits, 2–32 characters) and
// one category term, "c:" + category, so that "q and category" is the
// intersection of terms and one query shape serves every search.
const (
	minTermLen      = 2
	maxTermLen      = 32
	maxNameTerms    = 16
	maxQueryTerms   = 4
	categoryTermTag = "c:"
)

// nameTerms returns the distinct words of s in order of first appearance,
// at most max of them.
func nameTerms(s string, max int) []string {
	var out []string
	seen := map[string]bool{}
	for _, w := range strings.FieldsFunc(s, func(r rune) bool { return !unicode.IsLetter(r) && !unicode.IsDigit(r) }) {
		w = strings.ToLower(w)
		if n := utf8.RuneCountInString(w); n < minTermLen || n > maxTermLen || seen[w] {
			continue
		}
		seen[w] = true
		out = append(out, w)
		if len(out) == max {
			break
		}
	}
	return out
}

// productTerms is what the index holds for a product.
func productTerms(name, category string) []string {
	return append(nameTerms(name, maxNameTerms), categoryTermTag+category)
}

// queryPlan orders a search's terms: the first drives the index scan (in
// product ID order, so a page stops after `limit` hits); the others are
// probed per candidate. Without statistics, the longest word is the best
// guess at the rarest one; the category term, usually the broadest, goes
// last.
func queryPlan(words []string, category string) []string {
	terms := append([]string(nil), words...)
	// insertion sort, longest first, stable for equal lengths
	for i := 1; i < len(terms); i++ {
		for j := i; j > 0 && utf8.RuneCountInString(terms[j]) > utf8.RuneCountInString(terms[j-1]); j-- {
			terms[j], terms[j-1] = terms[j-1], terms[j]
		}
	}
	if category != "" {
		terms = append(terms, categoryTermTag+category)
	}
	return terms
}
