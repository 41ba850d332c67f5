// Package buildinfo says which scalelab this is and on what it runs, for
// `scalelab version` and for the reports that must name their machine.
package buildinfo

import (
	"os"
	"runtime"
	"runtime/debug"
	"strings"
)

// Version describes the binary from its build information: the module
// version, the commit it was built from (when the build recorded it) and
// the Go toolchain.
func Version() string {
	info, ok := debug.ReadBuildInfo()
	if !ok {
		return "scalelab (no build information) " + runtime.Version()
	}
	out := "scalelab " + info.Main.Version
	var rev, at, dirty string
	for _, s := range info.Settings {
		switch s.Key {
		case "vcs.revision":
			rev = s.Value
		case "vcs.time":
			at = s.Value
		case "vcs.modified":
			if s.Value == "true" {
				dirty = " (modified)"
			}
		}
	}
	if rev != "" {
		out += " commit " + rev[:min(12, len(rev))] + dirty
		if at != "" {
			out += " of " + at
		}
	}
	return out + " " + info.GoVersion + " " + runtime.GOOS + "/" + runtime.GOARCH
}

// Machine is where a measurement ran.
type Machine struct {
	Scalelab   string `json:"scalelab"`
	Go         string `json:"go"`
	OS         string `json:"os"`
	Arch       string `json:"arch"`
	Kernel     string `json:"kernel,omitempty"`
	CPU        string `json:"cpu,omitempty"`
	CPUs       int    `json:"cpus"`
	GOMAXPROCS int    `json:"gomaxprocs"`
	Host       string `json:"host,omitempty"`
}

// ThisMachine describes the machine this process runs on.
func ThisMachine() Machine {
	m := Machine{Scalelab: Version(), Go: runtime.Version(), OS: runtime.GOOS, Arch: runtime.GOARCH,
		CPUs: runtime.NumCPU(), GOMAXPROCS: runtime.GOMAXPROCS(0)}
	m.Host, _ = os.Hostname()
	if b, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		m.Kernel = strings.TrimSpace(string(b))
	}
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, line := range strings.Split(string(b), "\n") {
			if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
				m.CPU = strings.TrimSpace(v)
				break
			}
		}
	}
	return m
}
