// Package crawler is a polite web crawler: a URL frontier in Mercator's
// shape (package frontier), URL normalisation so that the spellings of one
// resource are one key, and the synthetic web it is tested and measured
// on (package testweb), whose fetch log proves politeness by counting.
//
// Normalisation (normalize.go) is the first defence against duplicate
// fetches: scheme and host case, default ports, fragments, dot segments,
// escapes of unreserved characters and the order of query parameters all
// fold into one form before a URL is tested against the URL-seen set.
package crawler
