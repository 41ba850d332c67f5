package autoscale

import "syscall"

// childAttr makes a copy die with the autoscaler: if the autoscaler is
// killed (SIGKILL leaves it no time to stop its copies), the kernel sends
// each copy SIGTERM, so no orphan keeps serving a port nobody balances.
func childAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGTERM}
}
