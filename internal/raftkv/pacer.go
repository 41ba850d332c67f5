package raftkv

import "time"

// pacer spreads a snapshot's work over time so that it takes at most duty
// of the wall clock: after each chunk of work it pauses for as long as the
// chunk took × (1−duty)/duty. A snapshot serialises and writes the whole
// store in one go; unpaced, on a machine whose cores and disk the Ready
// loop shares, every put acknowledged meanwhile waits behind it, and the
// put p99 grows with the store (bench/raftkv.sh from 300,000 keys: 15–18
// ms with snapshots off, 22–31 ms with them unpaced, 16–18 ms at a duty of
// 0.1). Paced, the same work takes longer (a 138 MB snapshot: 11 s at 0.1)
// and the log grows a little more meanwhile, which is all a slower
// snapshot costs; when one outlasts SnapshotEvery entries, the next starts
// as soon as it ends. Compaction rate limits in LSM stores and the
// background checkpointers of databases make the same trade.
type pacer struct {
	duty  float64 // 0 < duty < 1; anything else: no pauses
	now   func() time.Time
	sleep func(d time.Duration, stop <-chan struct{})
	stop  <-chan struct{} // closed: stop pausing (the node is stopping)
	last  time.Time       // when the current chunk of work began
}

// maxPause bounds one pause, so a chunk that stalled (a slow fsync) does
// not stretch the snapshot, and so a stopping node is not kept waiting.
const maxPause = 200 * time.Millisecond

// newPacer starts timing the first chunk of work at once.
func newPacer(duty float64, stop <-chan struct{}) *pacer {
	return &pacer{duty: duty, now: time.Now, sleep: sleepOrStop, stop: stop, last: time.Now()}
}

// step ends a chunk of work: it pauses for the chunk's share of idle time,
// then starts timing the next chunk.
func (p *pacer) step() {
	if p.duty <= 0 || p.duty >= 1 {
		return
	}
	work := p.now().Sub(p.last)
	if pause := min(time.Duration(float64(work)*(1-p.duty)/p.duty), maxPause); pause > 0 {
		select {
		case <-p.stop:
		default:
			p.sleep(pause, p.stop)
		}
	}
	p.last = p.now()
}

func sleepOrStop(d time.Duration, stop <-chan struct{}) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
	case <-stop:
	}
}
