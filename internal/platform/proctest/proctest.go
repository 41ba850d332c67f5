// Package proctest helps tests that run the real `scalelab` binary as
// separate processes (crash, SIGKILL and restart tests): it builds the
// binary once per test process and hands out free loopback addresses.
package proctest

import (
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sync"
	"testing"
)

var (
	once   sync.Once
	bin    string
	output []byte
	err    error
)

// Binary builds cmd/scalelab (once per test process) and returns its path.
func Binary(t testing.TB) string {
	t.Helper()
	once.Do(func() {
		_, file, _, _ := runtime.Caller(0)
		root := filepath.Join(filepath.Dir(file), "..", "..", "..")
		dir, derr := os.MkdirTemp("", "scalelab-bin-")
		if derr != nil {
			err = derr
			return
		}
		bin = filepath.Join(dir, "scalelab")
		cmd := exec.Command("go", "build", "-o", bin, "./cmd/scalelab")
		cmd.Dir = root
		output, err = cmd.CombinedOutput()
	})
	if err != nil {
		t.Fatalf("go build ./cmd/scalelab: %v\n%s", err, output)
	}
	return bin
}

// FreeAddr returns a 127.0.0.1 address with a port free at the time of the call.
func FreeAddr(t testing.TB) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}
