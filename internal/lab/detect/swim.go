package detect

import (
	"bytes"
	"fmt"
	"io"
	"log"
	"regexp"
	"sync"
	"time"

	"github.com/hashicorp/memberlist"

	"github.com/scalelab/scalelab/internal/platform/auth"
)

// SWIMConfig is one SWIM member.
type SWIMConfig struct {
	Name          string
	Host          string // bind address; the port is chosen
	ProbeInterval time.Duration
	// SuspicionMult scales the suspicion timeout: it starts at six times
	// SuspicionMult × ProbeInterval (Lifeguard) and falls towards
	// SuspicionMult × ProbeInterval as other members confirm.
	SuspicionMult int
	Key           *auth.Key
	Events        memberlist.EventDelegate
	Log           io.Writer                                       // memberlist's log (nil: discarded)
	Slow          func(memberlist.Transport) memberlist.Transport // nil: an ordinary link
}

// StartSWIM starts a member and joins it to the given addresses.
func StartSWIM(cfg SWIMConfig, join []string) (*memberlist.Memberlist, error) {
	if cfg.ProbeInterval < 20*time.Millisecond || cfg.SuspicionMult < 1 {
		return nil, fmt.Errorf("detect: probe interval %v (want ≥ 20ms), suspicion multiplier %d (want ≥ 1)", cfg.ProbeInterval, cfg.SuspicionMult)
	}
	out := cfg.Log
	if out == nil {
		out = io.Discard
	}
	logger := log.New(out, "", 0)
	nt, err := memberlist.NewNetTransport(&memberlist.NetTransportConfig{BindAddrs: []string{cfg.Host}, BindPort: 0, Logger: logger})
	if err != nil {
		return nil, err
	}
	c := memberlist.DefaultLocalConfig()
	c.Name = cfg.Name
	c.Logger = logger
	c.LogOutput = nil
	c.ProbeInterval = cfg.ProbeInterval
	c.ProbeTimeout = cfg.ProbeInterval / 2
	c.SuspicionMult = cfg.SuspicionMult
	c.GossipInterval = max(cfg.ProbeInterval/4, 10*time.Millisecond)
	c.PushPullInterval = 30 * cfg.ProbeInterval
	c.DisableTcpPings = true // both detectors see only the (slow) datagrams
	c.SecretKey = cfg.Key.GossipKey()
	c.Events = cfg.Events
	var tr memberlist.Transport = nt
	if cfg.Slow != nil {
		tr = cfg.Slow(nt)
	}
	c.Transport = tr
	c.BindPort, c.AdvertisePort = nt.GetAutoBindPort(), nt.GetAutoBindPort()
	c.BindAddr, c.AdvertiseAddr = cfg.Host, cfg.Host
	ml, err := memberlist.Create(c)
	if err != nil {
		_ = nt.Shutdown()
		return nil, err
	}
	if len(join) > 0 {
		if _, err := ml.Join(join); err != nil {
			_ = ml.Shutdown()
			return nil, fmt.Errorf("detect: join %v: %w", join, err)
		}
	}
	return ml, nil
}

// Addr is a member's gossip address.
func Addr(ml *memberlist.Memberlist) string { return ml.LocalNode().Address() }

// SuspicionLog reads memberlist's log for what it does not report
// otherwise: a prober's suspicion, a suspicion's refutation, and a death
// by suspicion timeout.
type SuspicionLog struct {
	mu       sync.Mutex
	partial  []byte
	suspects map[string][]time.Time
	refuted  int
	deaths   map[string]int
	now      func() time.Time
}

var (
	suspectLine = regexp.MustCompile(`memberlist: Suspect (\S+) has failed, no acks received`)
	refuteLine  = regexp.MustCompile(`memberlist: Refuting a suspect message`)
	deathLine   = regexp.MustCompile(`memberlist: Marking (\S+) as failed, suspect timeout reached`)
)

// NewSuspicionLog counts with the given clock (nil: time.Now).
func NewSuspicionLog(now func() time.Time) *SuspicionLog {
	if now == nil {
		now = time.Now
	}
	return &SuspicionLog{suspects: map[string][]time.Time{}, deaths: map[string]int{}, now: now}
}

// Write implements io.Writer for memberlist's logger.
func (l *SuspicionLog) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.partial = append(l.partial, p...)
	for {
		i := bytes.IndexByte(l.partial, '\n')
		if i < 0 {
			break
		}
		line := l.partial[:i]
		if m := suspectLine.FindSubmatch(line); m != nil {
			l.suspects[string(m[1])] = append(l.suspects[string(m[1])], l.now())
		} else if refuteLine.Match(line) {
			l.refuted++
		} else if m := deathLine.FindSubmatch(line); m != nil {
			l.deaths[string(m[1])]++
		}
		l.partial = l.partial[i+1:]
	}
	if len(l.partial) > 4096 { // no line is this long; drop what cannot be one
		l.partial = l.partial[:0]
	}
	return len(p), nil
}

// Suspicions are the times name was suspected by a prober writing here.
func (l *SuspicionLog) Suspicions(name string) []time.Time {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]time.Time(nil), l.suspects[name]...)
}

// Refuted counts suspicions refuted by a member writing here.
func (l *SuspicionLog) Refuted() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.refuted
}

// Deaths counts the suspicion timeouts that declared name dead here.
func (l *SuspicionLog) Deaths(name string) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.deaths[name]
}
