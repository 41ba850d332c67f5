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

// handedOut remembers every address FreeAddr has returned in this test
// process. The kernel may give the same ephemeral port to two successive
// listen(":0") calls once the first listener is closed, and a test that
// allocates all its nodes' ports up front (then kills and restarts one) would
// see two nodes on one port — CI saw exactly that.
var (
	handedOutMu sync.Mutex
	handedOut   = map[string]bool{}
)

// FreeAddr returns a 127.0.0.1 address with a port free at the time of the
// call and never returned before by this test process.
func FreeAddr(t testing.TB) string {
	t.Helper()
	handedOutMu.Lock()
	defer handedOutMu.Unlock()
	for range 100 {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		addr := l.Addr().String()
		l.Close()
		if !handedOut[addr] {
			handedOut[addr] = true
			return addr
		}
	}
	t.Fatal("proctest: no unused loopback port after 100 tries")
	return ""
}

var (
	toolsMu sync.Mutex
	tools   = map[string]string{}
)

// Tool builds the Go program pkg, which go.mod names as a tool (a `tool`
// line, e.g. etcdctl), as name, once per test process, and returns its
// path: tests run peers' own clients at the version the module pins.
func Tool(t testing.TB, name, pkg string) string {
	t.Helper()
	toolsMu.Lock()
	defer toolsMu.Unlock()
	if path, ok := tools[pkg]; ok {
		return path
	}
	_, file, _, _ := runtime.Caller(0)
	root := filepath.Join(filepath.Dir(file), "..", "..", "..")
	dir, err := os.MkdirTemp("", "scalelab-tool-")
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, name)
	cmd := exec.Command("go", "build", "-o", path, pkg)
	cmd.Dir = root
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build %s: %v\n%s", pkg, err, out)
	}
	tools[pkg] = path
	return path
}
