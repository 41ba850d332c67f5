package console

import (
	"context"
	"embed"
	"encoding/json"
	"fmt"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/scalelab/scalelab/internal/autoscale"
	"github.com/scalelab/scalelab/internal/dynamo"
	"github.com/scalelab/scalelab/internal/lb"
	"github.com/scalelab/scalelab/internal/platform/apperr"
	"github.com/scalelab/scalelab/internal/platform/auth"
	"github.com/scalelab/scalelab/internal/platform/downstream"
	"github.com/scalelab/scalelab/internal/platform/host"
	"github.com/scalelab/scalelab/internal/platform/httpx"
	"github.com/scalelab/scalelab/internal/raftkv"
	"github.com/scalelab/scalelab/internal/shop"
)

//go:embed console.html assets
var files embed.FS

// history is how many one-second samples the charts keep.
const history = 120

// SystemInfo is one system in the console.
type SystemInfo struct {
	Name        string `json:"name"`
	Description string `json:"description"`
	BaseURL     string `json:"base_url"`
	Requests    uint64 `json:"requests"` // since the process started
	Rate        Rate   `json:"rate"`     // over the last second
	// Own are the system's own metrics: its live state as it exports it.
	Own []OwnMetric `json:"own,omitempty"`
}

// Election is a change of raftkv leader, as the console saw it.
type Election struct {
	At     time.Time `json:"at"`
	Term   uint64    `json:"term"`
	Leader uint64    `json:"leader"` // 0: no leader
}

// State is what the page draws, once a second.
type State struct {
	At      time.Time    `json:"at"`
	Systems []SystemInfo `json:"systems"`
	// Series are the per-second rates of each system, oldest first.
	Series map[string][]Rate `json:"series"`
	Times  []int64           `json:"times"` // unix seconds of the samples
	Raft   *RaftState        `json:"raftkv,omitempty"`
	Dynamo *DynamoState      `json:"dynamo,omitempty"`
	Shop   *ShopState        `json:"shop,omitempty"`
	LB     *lb.Snapshot      `json:"lb,omitempty"`
	// Autoscale is the autoscaler's fleet (on its own admin port's console).
	Autoscale *autoscale.Snapshot `json:"autoscale,omitempty"`
	// Controls: the page may offer the fault buttons, the load and the
	// experiments (false on one cluster node: there is no in-process
	// cluster to break, and a node runs no experiments).
	Controls bool `json:"controls"`
}

// ShopState is the shop's dependencies: their breakers, and the faults
// of the in-process inventory and payment services.
type ShopState struct {
	Dependencies []shop.DependencyState       `json:"dependencies"`
	Faults       map[string]downstream.Faults `json:"faults,omitempty"` // by service; absent with real downstream services
	Downstream   *downstream.Stats            `json:"downstream,omitempty"`
}

// RaftState is raftkv's cluster.
type RaftState struct {
	Nodes     []raftkv.NodeState `json:"nodes"`
	Elections []Election         `json:"elections"`
}

// DynamoState is dynamo's cluster.
type DynamoState struct {
	Nodes []dynamo.NodeView `json:"nodes"`
	Ring  []dynamo.Arc      `json:"ring"`
}

// described is what the console needs of a system: its name and line.
type described interface {
	Name() string
	Description() string
}

// Console watches the systems of one `up` process.
type Console struct {
	base    string
	systems []described
	metrics *httpx.Metrics
	admin   *auth.AdminToken
	raft    *raftkv.LocalCluster
	dyn     *dynamo.LocalCluster
	shop    *shop.Service
	lab     *experiments
	load    *loads
	gather  prometheus.Gatherer
	prevOwn map[string][]OwnMetric
	atRoot  bool       // one system served at the base URL itself (its own serve command)
	view    func() any // one cluster node's own view (ForNode); nil otherwise

	mu        sync.Mutex
	state     State
	prev      map[string]*httpx.RequestTotals
	prevAt    time.Time
	elections []Election
	changed   chan struct{} // closed and replaced at every sample
}

// New builds the console over the started systems; Run samples them.
// Experiment runs go under dataDir/experiments.
func New(base string, systems []host.System, metrics *httpx.Metrics, admin *auth.AdminToken, dataDir string, gather prometheus.Gatherer) *Console {
	binary, _ := os.Executable()
	c := &Console{base: base, metrics: metrics, admin: admin, changed: make(chan struct{}),
		state: State{Series: map[string][]Rate{}}, gather: gather,
		lab:  &experiments{dir: filepath.Join(dataDir, "experiments"), binary: binary, logs: map[string]*logBuffer{}},
		load: &loads{base: base, dir: filepath.Join(dataDir, "load")}}
	for _, s := range systems {
		c.systems = append(c.systems, s)
		switch v := s.(type) {
		case *raftkv.LocalCluster:
			c.raft = v
		case *dynamo.LocalCluster:
			c.dyn = v
		case *shop.Service:
			c.shop = v
		}
	}
	c.sample(time.Now())
	return c
}

// ForOne is the console of one system served at the root of base, as its
// own serve command runs it (the page is at base/ui/).
func ForOne(base string, sys host.System, d *host.Deps) *Console {
	c := New(base, []host.System{sys}, d.Metrics, d.Admin, d.Engines.Data, d.Registry)
	c.atRoot = true
	c.mu.Lock()
	for i := range c.state.Systems {
		c.state.Systems[i].BaseURL = base
	}
	c.mu.Unlock()
	return c
}

// nodeSystem names a cluster node's system for its card.
type nodeSystem struct{ name, description string }

func (s nodeSystem) Name() string        { return s.name }
func (s nodeSystem) Description() string { return s.description }

// ForNode is the console of one cluster node, served at /ui/ of its client
// port: the node's own view of its cluster, drawn as the raftkv or dynamo
// page with no buttons, and its request rates and metrics.
func ForNode(n host.NodeConsole) *Console {
	c := New("", nil, n.Metrics, n.Admin, n.DataDir, n.Gather)
	c.systems = []described{nodeSystem{n.System, n.Description}}
	c.atRoot, c.view = true, n.View
	c.state = State{Series: map[string][]Rate{}} // New sampled without the node: start again
	c.sample(time.Now())
	return c
}

func (c *Console) systemURL(name string) string {
	if c.atRoot {
		return c.base
	}
	return c.base + "/" + name
}

// Run samples once a second until ctx ends.
func (c *Console) Run(ctx context.Context) {
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-t.C:
			c.sample(now)
		}
	}
}

func (c *Console) sample(now time.Time) {
	totals := c.metrics.Snapshot()
	names := make([]string, len(c.systems))
	for i, s := range c.systems {
		names[i] = s.Name()
	}
	own := ownMetrics(c.gather, names)
	c.mu.Lock()
	defer c.mu.Unlock()
	dt := now.Sub(c.prevAt).Seconds()
	withRates(own, c.prevOwn, dt)
	c.prevOwn = own
	// Every sample is a new State (new map, new slices where they grow), so
	// a state handed out earlier is never written again.
	st := State{At: now, Series: map[string][]Rate{}, Times: append(c.state.Times[:len(c.state.Times):len(c.state.Times)], now.Unix())}
	if len(st.Times) > history {
		st.Times = st.Times[len(st.Times)-history:]
	}
	for _, s := range c.systems {
		var rate Rate
		if !c.prevAt.IsZero() {
			rate = rateBetween(c.prev[s.Name()], totals[s.Name()], dt)
		} else {
			rate = Rate{P50MS: -1, P99MS: -1}
		}
		st.Systems = append(st.Systems, SystemInfo{Name: s.Name(), Description: s.Description(),
			BaseURL: c.systemURL(s.Name()), Requests: c.metrics.Requests(s.Name()), Rate: rate, Own: own[s.Name()]})
		old := c.state.Series[s.Name()]
		series := append(old[:len(old):len(old)], rate)
		if len(series) > history {
			series = series[len(series)-history:]
		}
		st.Series[s.Name()] = series
	}
	c.clusters(&st, now)
	c.state, c.prev, c.prevAt = st, totals, now
	close(c.changed)
	c.changed = make(chan struct{})
}

// clusters fills in the clusters' state (c.mu held).
func (c *Console) clusters(st *State, now time.Time) {
	st.Controls = c.view == nil
	var raftNodes []raftkv.NodeState
	switch v := c.viewNow().(type) {
	case raftkv.NodeState:
		raftNodes = []raftkv.NodeState{v}
	case dynamo.NodeSnapshot:
		st.Dynamo = &DynamoState{Nodes: []dynamo.NodeView{v.Node}, Ring: v.Ring}
	case lb.Snapshot:
		st.LB = &v
	case autoscale.Snapshot:
		st.Autoscale = &v
	}
	if c.raft != nil {
		raftNodes = c.raft.State()
	}
	if raftNodes != nil {
		nodes := raftNodes
		var leader, term uint64
		for _, n := range nodes {
			if n.Running && n.Role == "leader" && n.Term >= term {
				leader, term = n.ID, n.Term
			}
		}
		if leader == 0 && len(nodes) == 1 { // one node's view: the leader it follows
			leader, term = nodes[0].Leader, nodes[0].Term
		}
		if last := len(c.elections) - 1; last < 0 || c.elections[last].Leader != leader {
			c.elections = append(c.elections, Election{At: now, Term: term, Leader: leader})
			if len(c.elections) > 50 {
				c.elections = c.elections[len(c.elections)-50:]
			}
		}
		st.Raft = &RaftState{Nodes: nodes, Elections: append([]Election(nil), c.elections...)}
	}
	if c.dyn != nil {
		nodes, ring := c.dyn.State()
		st.Dynamo = &DynamoState{Nodes: nodes, Ring: ring}
	}
	if c.shop != nil {
		st.Shop = &ShopState{Dependencies: c.shop.Dependencies()}
		if sim := c.shop.Simulator(); sim != nil {
			st.Shop.Faults = map[string]downstream.Faults{}
			for _, name := range downstream.Services {
				st.Shop.Faults[name] = sim.Faults(name)
			}
			stats := sim.Stats()
			st.Shop.Downstream = &stats
		}
	}
}

func (c *Console) viewNow() any {
	if c.view == nil {
		return nil
	}
	return c.view()
}

// refresh redraws the clusters at once after a control, without a rate
// sample (a rate over a fraction of a second would be noise).
func (c *Console) refresh(now time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	st := c.state
	c.clusters(&st, now)
	c.state = st
	close(c.changed)
	c.changed = make(chan struct{})
}

// Handler serves the page, its assets, the state, the event stream and the
// fault buttons.
func (c *Console) Handler() http.Handler {
	mux := http.NewServeMux()
	page, _ := files.ReadFile("console.html")
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		w.Header().Set("Cache-Control", "no-cache")
		_, _ = w.Write(page)
	})
	assets, _ := fs.Sub(files, "assets")
	mux.Handle("GET /console/assets/", http.StripPrefix("/console/assets/", http.FileServerFS(assets)))
	mux.HandleFunc("GET /console/state", func(w http.ResponseWriter, r *http.Request) {
		httpx.WriteJSON(w, http.StatusOK, c.snapshot())
	})
	mux.HandleFunc("GET /api/systems", func(w http.ResponseWriter, r *http.Request) {
		systems := c.snapshot().Systems
		for i := range systems { // the counts as of now, the rate as of the last sample
			systems[i].Requests = c.metrics.Requests(systems[i].Name)
		}
		httpx.WriteJSON(w, http.StatusOK, map[string]any{"systems": systems})
	})
	mux.HandleFunc("GET /console/events", c.events)
	mux.Handle("POST /console/raftkv/nodes/{id}/{action}", c.admin.RequireFunc(c.raftAction))
	mux.Handle("POST /console/dynamo/{action}", c.admin.RequireFunc(c.dynamoAction))
	mux.Handle("POST /console/shop/{service}/{action}", c.admin.RequireFunc(c.shopAction))
	if c.view == nil {
		c.lab.routes(mux, c.admin.RequireFunc)
		c.load.routes(mux, c.admin.RequireFunc)
	}
	return mux
}

func (c *Console) snapshot() State {
	c.mu.Lock()
	defer c.mu.Unlock()
	st := c.state
	st.Systems = append([]SystemInfo(nil), st.Systems...)
	return st
}

// events streams the state as server-sent events, one per sample.
func (c *Console) events(w http.ResponseWriter, r *http.Request) {
	rc := http.NewResponseController(w)
	_ = rc.SetWriteDeadline(time.Time{}) // a stream outlives the request timeout
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("Cache-Control", "no-cache")
	for {
		c.mu.Lock()
		st, next := c.state, c.changed
		data, err := json.Marshal(st)
		c.mu.Unlock()
		if err != nil {
			return
		}
		if _, err := fmt.Fprintf(w, "data: %s\n\n", data); err != nil {
			return
		}
		if rc.Flush() != nil {
			return
		}
		select {
		case <-r.Context().Done():
			return
		case <-next:
		}
	}
}

func (c *Console) raftAction(w http.ResponseWriter, r *http.Request) {
	if c.raft == nil {
		httpx.WriteError(w, r, apperr.E(apperr.NotFound, "raftkv is not running in this process"))
		return
	}
	id, err := strconv.ParseUint(r.PathValue("id"), 10, 64)
	if err != nil {
		httpx.WriteError(w, r, apperr.E(apperr.Invalid, "node ID %q: want a number", r.PathValue("id")))
		return
	}
	switch r.PathValue("action") {
	case "stop":
		err = c.raft.StopNode(id)
	case "restart":
		err = c.raft.RestartNode(id)
	case "isolate":
		err = c.raft.IsolateNode(id)
	case "heal":
		c.raft.Heal()
	default:
		httpx.WriteError(w, r, apperr.E(apperr.NotFound, "actions are stop, restart, isolate and heal"))
		return
	}
	c.answer(w, r, err)
}

func (c *Console) dynamoAction(w http.ResponseWriter, r *http.Request) {
	if c.dyn == nil {
		httpx.WriteError(w, r, apperr.E(apperr.NotFound, "dynamo is not running in this process"))
		return
	}
	var body struct {
		Node string   `json:"node"`
		A    []string `json:"a"`
		B    []string `json:"b"`
	}
	if r.PathValue("action") != "heal" {
		if err := httpx.DecodeJSON(r, &body); err != nil {
			httpx.WriteError(w, r, err)
			return
		}
	}
	var err error
	switch r.PathValue("action") {
	case "partition":
		if len(body.A) == 0 || len(body.B) == 0 {
			httpx.WriteError(w, r, apperr.E(apperr.Invalid, `partition needs {"a":[nodes…],"b":[nodes…]}`))
			return
		}
		err = c.dyn.Partition(body.A, body.B)
	case "heal":
		c.dyn.Heal()
	case "crash":
		err = c.dyn.Crash(body.Node)
	case "recover":
		err = c.dyn.Recover(body.Node)
	default:
		httpx.WriteError(w, r, apperr.E(apperr.NotFound, "actions are partition, heal, crash and recover"))
		return
	}
	c.answer(w, r, err)
}

// shopAction stalls or releases one of the shop's in-process downstream
// services: the page's "stall payments" button.
func (c *Console) shopAction(w http.ResponseWriter, r *http.Request) {
	if c.shop == nil || c.shop.Simulator() == nil {
		httpx.WriteError(w, r, apperr.E(apperr.NotFound, "the shop's downstream services are not in this process"))
		return
	}
	sim, service := c.shop.Simulator(), r.PathValue("service")
	if !slices.Contains(downstream.Services, service) {
		httpx.WriteError(w, r, apperr.E(apperr.NotFound, "no service %q: want inventory or payment", clip(service)))
		return
	}
	f := sim.Faults(service)
	switch r.PathValue("action") {
	case "stall":
		f.Stalled = true
	case "release":
		f.Stalled = false
	default:
		httpx.WriteError(w, r, apperr.E(apperr.NotFound, "actions are stall and release"))
		return
	}
	c.answer(w, r, sim.SetFaults(service, f))
}

// answer reports a control's outcome: a refused one (no such node, already
// stopped) is the client's mistake.
func (c *Console) answer(w http.ResponseWriter, r *http.Request, err error) {
	if err != nil {
		httpx.WriteError(w, r, apperr.E(apperr.Conflict, "%s", err.Error()))
		return
	}
	c.refresh(time.Now()) // the page sees the effect at once
	httpx.WriteJSON(w, http.StatusOK, map[string]string{"status": "done"})
}
