package feed

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/scalelab/scalelab/internal/platform/host"
	"github.com/scalelab/scalelab/internal/platform/host/hosttest"
)

type response struct {
	status int
	body   map[string]any
	raw    string
}

func call(t *testing.T, method, url, token, body string) response {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := (&http.Client{Timeout: 10 * time.Second}).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	r := response{status: resp.StatusCode, raw: string(raw)}
	_ = json.Unmarshal(raw, &r.body)
	if resp.StatusCode >= 400 {
		if _, ok := r.body["error"]; !ok {
			t.Fatalf("%s %s: %d without a JSON error: %q", method, url, resp.StatusCode, raw)
		}
	}
	return r
}

func want(t *testing.T, r response, status int, what string) response {
	t.Helper()
	if r.status != status {
		t.Fatalf("%s: status %d, want %d: %s", what, r.status, status, r.raw)
	}
	return r
}

func startServer(t *testing.T, cfg Config) (string, *Service) {
	t.Helper()
	var svc *Service
	base := hosttest.Start(t, host.Engines{}, func(ctx context.Context, d *host.Deps) (host.System, error) {
		s, err := New(ctx, d, cfg)
		svc = s
		return s, err
	})
	return base, svc
}

type account struct {
	id, token string
}

func signup(t *testing.T, base, handle string) account {
	t.Helper()
	r := want(t, call(t, "POST", base+"/api/v1/users", "", `{"handle":"`+handle+`"}`), 201, "sign up "+handle)
	u := r.body["user"].(map[string]any)
	return account{id: u["id"].(string), token: r.body["token"].(string)}
}

// The API end to end, and every kind of bad request it must refuse with
// a 4xx and a JSON body.
func TestAPI(t *testing.T) {
	cfg := testConfig()
	cfg.WriteLimit = "7/m:7" // bob's eighth write is refused
	base, svc := startServer(t, cfg)
	api := base + "/api/v1"
	ann, bob, cat := signup(t, base, "ann"), signup(t, base, "bob"), signup(t, base, "cat")

	want(t, call(t, "POST", api+"/users", "", `{"handle":"ann"}`), 409, "a taken handle")
	want(t, call(t, "POST", api+"/users", "", `{"handle":"A B"}`), 400, "a bad handle")
	want(t, call(t, "POST", api+"/users", "", `{"handle":"zed","mode":"sideways"}`), 400, "a bad mode")
	want(t, call(t, "POST", api+"/users", "", `{"handle":`), 400, "broken JSON")
	want(t, call(t, "PUT", api+"/users/"+bob.id+"/following/"+ann.id, "", ""), 401, "follow without a token")
	want(t, call(t, "PUT", api+"/users/"+bob.id+"/following/"+ann.id, "not-a-token", ""), 401, "follow with a wrong token")
	want(t, call(t, "PUT", api+"/users/"+bob.id+"/following/"+ann.id, ann.token, ""), 403, "follow as someone else")
	want(t, call(t, "PUT", api+"/users/"+bob.id+"/following/"+bob.id, bob.token, ""), 400, "follow oneself")
	want(t, call(t, "PUT", api+"/users/"+bob.id+"/following/123", bob.token, ""), 404, "follow nobody")
	want(t, call(t, "PUT", api+"/users/"+bob.id+"/following/x1", bob.token, ""), 400, "follow a bad ID")
	want(t, call(t, "PUT", api+"/users/"+bob.id+"/following/"+ann.id, bob.token, ""), 204, "bob follows ann")

	want(t, call(t, "POST", api+"/posts", ann.token, `{"body":"`+strings.Repeat("é", 501)+`"}`), 400, "a post of 501 characters")
	want(t, call(t, "POST", api+"/posts", ann.token, `{"body":"   "}`), 400, "an empty post")
	post := want(t, call(t, "POST", api+"/posts", ann.token, `{"body":"`+strings.Repeat("é", 500)+`"}`), 201, "a post of 500 characters").body["id"].(string)
	want(t, call(t, "GET", api+"/users/"+bob.id+"/timeline", ann.token, ""), 403, "someone else's timeline")
	want(t, call(t, "GET", api+"/users/"+bob.id+"/timeline?cursor=-1", bob.token, ""), 400, "a bad cursor")
	want(t, call(t, "GET", api+"/users/"+bob.id+"/timeline?limit=1000", bob.token, ""), 400, "a huge page")

	settle(t, svc)
	tl := want(t, call(t, "GET", api+"/users/"+bob.id+"/timeline", bob.token, ""), 200, "bob's timeline")
	items := tl.body["items"].([]any)
	if len(items) != 1 || items[0].(map[string]any)["id"] != post {
		t.Fatalf("bob's timeline: %s", tl.raw)
	}
	want(t, call(t, "PUT", api+"/posts/"+post+"/like", bob.token, ""), 200, "like")
	r := want(t, call(t, "PUT", api+"/posts/"+post+"/like", bob.token, ""), 200, "like again")
	if r.body["likes"].(float64) != 1 {
		t.Fatalf("two likes by one user count %v", r.body["likes"])
	}
	want(t, call(t, "POST", api+"/posts/"+post+"/comments", bob.token, `{"body":"nice"}`), 201, "comment")
	want(t, call(t, "POST", api+"/posts/"+post+"/comments", bob.token, `{"body":"more"}`), 429, "over the write limit")
	p := want(t, call(t, "GET", api+"/posts/"+post, "", ""), 200, "the post").body
	if p["likes"].(float64) != 1 || p["comments"].(float64) != 1 {
		t.Fatalf("counters: %v", p)
	}
	tl = want(t, call(t, "GET", api+"/users/"+bob.id+"/timeline", bob.token, ""), 200, "bob's timeline")
	if !tl.body["items"].([]any)[0].(map[string]any)["liked"].(bool) {
		t.Fatalf("bob's like is not shown: %s", tl.raw)
	}
	want(t, call(t, "DELETE", api+"/posts/"+post, cat.token, ""), 404, "delete someone else's post")
	want(t, call(t, "DELETE", api+"/posts/"+post, ann.token, ""), 204, "delete one's post")
	want(t, call(t, "GET", api+"/posts/"+post, "", ""), 404, "a deleted post")
	tl = want(t, call(t, "GET", api+"/users/"+bob.id+"/timeline", bob.token, ""), 200, "bob's timeline")
	if n := len(tl.body["items"].([]any)); n != 0 {
		t.Fatalf("a deleted post is still in a timeline: %s", tl.raw)
	}
}
