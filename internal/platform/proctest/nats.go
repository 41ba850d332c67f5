package proctest

import (
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
)

// StartNATS runs a NATS server with JetStream on 127.0.0.1:port, keeping its
// streams in storeDir, so that a test can shut it down and start it again
// on the same port and store: a broker restart as clients see it.
func StartNATS(t testing.TB, port int, storeDir string) *server.Server {
	t.Helper()
	srv, err := server.NewServer(&server.Options{Host: "127.0.0.1", Port: port, JetStream: true,
		StoreDir: storeDir, NoSigs: true, NoLog: true})
	if err != nil {
		t.Fatal(err)
	}
	srv.Start()
	if !srv.ReadyForConnections(10 * time.Second) {
		t.Fatal("nats did not start")
	}
	return srv
}
