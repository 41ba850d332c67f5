//go:build race

package feed

// groundTruthSteps is shorter under the race detector, which runs the
// package several times slower: its value is in the concurrent paths every
// step already takes, not in more steps.
const groundTruthSteps = 40
