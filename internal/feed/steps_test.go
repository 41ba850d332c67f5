//go:build !race

package feed

// groundTruthSteps is how many random operations each mode's ground-truth
// check makes.
const groundTruthSteps = 120
