// Package lab holds scalelab's experiments: each one runs a real system,
// breaks it on purpose (a partition, a stalled dependency, killed and
// paused processes), measures what happens, and writes a report whose
// lesson is computed from the figures of that run — never written in
// advance — and which says whether the property under test held.
//
// The lab is a layer above the systems: an experiment's machinery lives
// with its system (dynamo.RunCAP, raftkv.RunCheck, shop/cascade.Run),
// where it can reach the system's insides, and the lab gives every one the
// same entry point (`scalelab experiment list`, `scalelab experiment run
// NAME [flags]`), the same report files (report.md, report.json with the
// run's settings and machine, and its SVG plots, in --out; see Execute)
// and the same exit status: 0 when the property held, 1 when it did not.
// The console runs them through the same Execute.
//
// An experiment whose subject belongs to no system keeps its parts here:
// failure-detection compares SWIM (memberlist) with a plain heartbeat
// timeout (package detect), on members of its own, one of them a separate
// process (`scalelab experiment member`) so that it can be paused.
//
// Adding an experiment: write its run in its system's package, returning
// its figures; add an Experiment to catalog.go that binds its flags, runs
// it and turns the figures into a Report (Lesson sentences, Figures by
// name, Passed).
package lab
