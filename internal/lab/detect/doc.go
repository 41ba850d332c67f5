// Package detect holds the two failure detectors the failure-detection
// experiment compares, and what it needs to break them on purpose.
//
// A plain heartbeat detector (Heartbeat) is the textbook one: every member
// sends a datagram every interval; the observer declares a member failed
// when it has heard nothing for the timeout. Its only knob is the timeout:
// short, and a member behind a slow or jittery link is declared dead while
// it is alive; long, and a dead member is served traffic for that long. It
// has one opinion, the observer's own, and no way to ask anybody else.
//
// SWIM (memberlist, with the Lifeguard extensions, as in Consul and Serf)
// probes one member per interval, asks k others to probe it indirectly when
// the direct probe goes unanswered, and only *suspects* it then. The
// suspect learns of the suspicion through gossip and refutes it with a
// higher incarnation; only a suspicion that nobody refutes within the
// suspicion timeout (which shrinks as other members confirm it) becomes a
// death. A slow member therefore costs suspicions, rarely deaths, and a
// dead member takes longer to be declared dead.
//
// memberlist keeps its suspicions to itself: SuspicionLog counts them from
// its log lines ("Suspect X has failed"), the one place it states them.
// The pattern is pinned with memberlist's version in go.mod and checked by
// the experiment's test, which fails if it stops matching.
//
// SlowTransport puts a slow link under one member: every datagram it sends
// or receives waits a random delay first. Streams (memberlist's push-pull
// over TCP) are not delayed, and the experiment turns memberlist's TCP
// fallback ping off, so that both detectors see the same slow datagrams.
//
// Heartbeats are sealed with the cluster key (auth.SealDatagram) and carry
// a sequence number; a receiver drops a packet with a bad tag, a foreign
// name, or a number it has already passed, so nobody without the key can
// keep a dead member alive by replaying its heartbeats.
package detect
