//go:build !linux

package autoscale

import "syscall"

// childAttr: outside Linux there is no parent-death signal; copies of a
// killed autoscaler must be stopped by hand.
func childAttr() *syscall.SysProcAttr { return nil }
