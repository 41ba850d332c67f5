package idgen

import (
	"encoding/json"
	"io"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/scalelab/scalelab/internal/platform/host"
	"github.com/scalelab/scalelab/internal/platform/host/hosttest"
	"github.com/scalelab/scalelab/internal/platform/snowflake"
	"github.com/scalelab/scalelab/internal/platform/testsvc"
)

func start(t *testing.T, e host.Engines, cfg Config) string {
	t.Helper()
	return hosttest.Start(t, e, Factory(cfg).New)
}

func get(t *testing.T, url string, into any) int {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if !strings.HasPrefix(resp.Header.Get("Content-Type"), "application/json") {
		t.Fatalf("GET %s: content type %q", url, resp.Header.Get("Content-Type"))
	}
	if err := json.Unmarshal(body, into); err != nil {
		t.Fatalf("GET %s: %q: %v", url, body, err)
	}
	return resp.StatusCode
}

func TestAPI(t *testing.T) {
	cfg := DefaultConfig()
	cfg.Worker.ID = 42
	base := start(t, host.Engines{}, cfg)

	var ids idsResponse
	if s := get(t, base+"/api/v1/ids?count=10000", &ids); s != 200 || len(ids.IDs) != 10000 {
		t.Fatalf("count=10000: %d, %d ids", s, len(ids.IDs))
	}
	prev := int64(0)
	for _, s := range ids.IDs {
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil || n <= prev {
			t.Fatalf("id %q after %d", s, prev)
		}
		prev = n
	}
	if s := get(t, base+"/api/v1/ids", &ids); s != 200 || len(ids.IDs) != 1 {
		t.Fatalf("default count: %d %v", s, ids.IDs)
	}

	var d Decoded
	if s := get(t, base+"/api/v1/ids/"+ids.IDs[0], &d); s != 200 {
		t.Fatalf("decode: %d", s)
	}
	if d.Worker != 42 || d.ID != ids.IDs[0] || time.Since(d.Time) > time.Minute || d.Time.After(time.Now().Add(time.Second)) {
		t.Fatalf("decoded %+v", d)
	}
	if n, _ := snowflake.DecodeBase62(d.Base62); strconv.FormatUint(n, 10) != d.ID {
		t.Fatalf("base62 %q does not match %s", d.Base62, d.ID)
	}

	// A fresh body per case: a value reused across cases would carry the
	// first case's error message into the next.
	for _, q := range []string{"count=0", "count=10001", "count=-1", "count=abc", "count=1.5"} {
		var e struct{ Error string }
		if s := get(t, base+"/api/v1/ids?"+q, &e); s != 400 || e.Error == "" {
			t.Errorf("%s: %d %q", q, s, e.Error)
		}
	}
	var dflt struct{ IDs []string }
	if s := get(t, base+"/api/v1/ids?count=", &dflt); s != 200 || len(dflt.IDs) != 1 {
		t.Errorf("an empty count (the default, one ID): %d %v", s, dflt.IDs)
	}
	for _, id := range []string{"abc", "-1", "99999999999999999999", "1e5"} {
		var e struct{ Error string }
		if s := get(t, base+"/api/v1/ids/"+id, &e); s != 400 || e.Error == "" {
			t.Errorf("decode %s: %d %q", id, s, e.Error)
		}
	}
}

// Two servers leasing from one store never share a worker ID, and /readyz
// reports the lease.
func TestLeasedWorkers(t *testing.T) {
	for name, e := range map[string]func() host.Engines{
		"SQL": func() host.Engines { return host.Engines{DB: testsvc.Postgres(t)} },
		"Redis": func() host.Engines {
			return host.Engines{Cache: testsvc.Redis(t), Namespace: testsvc.Name("idgentest")}
		},
	} {
		t.Run(name, func(t *testing.T) {
			eng := e()
			a, b := start(t, eng, DefaultConfig()), start(t, eng, DefaultConfig())
			var ia, ib idsResponse
			get(t, a+"/api/v1/ids", &ia)
			get(t, b+"/api/v1/ids", &ib)
			var da, db Decoded
			get(t, a+"/api/v1/ids/"+ia.IDs[0], &da)
			get(t, b+"/api/v1/ids/"+ib.IDs[0], &db)
			if da.Worker == db.Worker {
				t.Fatalf("both servers use worker %d", da.Worker)
			}
			var ready map[string]any
			if s := get(t, a+"/readyz", &ready); s != 200 {
				t.Fatalf("readyz: %d %v", s, ready)
			}
		})
	}
}
