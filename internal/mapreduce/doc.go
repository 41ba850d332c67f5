// Package mapreduce is the design of the Google MapReduce paper (Dean and
// Ghemawat, OSDI 2004) on scalelab's broker, blob store and SQL store: a
// coordinator (the paper's master) and any number of workers, which need
// only the broker and the blob store.
//
// # A job's life
//
//  1. Submit. The coordinator lists the input (a file or directory every
//     worker sees at the same path, or objects under a prefix of the blob
//     store), cuts it into splits by size alone (split.go), writes the job's
//     spec to the blob store (mapreduce/JOB/job.json), records the job in
//     SQL and queues one attempt per split. A range-partitioned job (sort)
//     first samples records from up to 32 splits and cuts R-1 keys from
//     them.
//  2. Map. A worker takes a task message from the work queue (broker topic
//     mapreduce-tasks, group "workers", one unsettled message per slot:
//     broker.MemberPrefetch(1), so an idle worker is never starved by a busy
//     one holding tasks ahead), says "started" on mapreduce-events, reads its
//     split — a line that begins before the split is skipped, the line it
//     started is read to its end (Hadoop's rule) — and runs the job's Map.
//     Pairs are partitioned by hash(key) mod R (or the job's own
//     Partitioner), combined on the worker when the job has a Combiner, held
//     in memory up to --memory and spilled as sorted runs to local disk
//     beyond it (mapper.go). The output is one object per attempt,
//     mapreduce/JOB/map/M.A: R sorted runs and an index (runs.go), written in
//     one Put, so it is whole or absent.
//  3. Reduce. When every map task is done, the coordinator queues R reduce
//     attempts, each naming the chosen output of every map task. A reducer
//     reads its run from each (one ranged read per object), merges them with
//     a heap, calls Reduce once per key and writes mapreduce/JOB/out/part-R in
//     one Put: the paper's atomic rename. Two attempts of a deterministic job
//     write the same bytes under the same name, so a re-executed task can
//     never leave a partial or a second output file.
//  4. Finish. A job with a Finisher (top-k) gets a last sequential step in
//     the coordinator over the parts, stored as out/result. The job is done
//     only when its output is all there.
//
// # Failures
//
// The coordinator owns every decision, and makes them in a pure function,
// Plan (schedule.go), from the attempts the store holds and the time:
//
//   - Leases. A running attempt holds a lease renewed by its worker's
//     heartbeats (a fan-out topic, kept in memory: a heartbeat is stale in
//     seconds). An attempt silent for --lease (10 s) is lost, and its task
//     queued again for another worker: a dead or stalled worker loses its
//     task in seconds, not after the broker's redelivery timeout (NATS's ack
//     wait; RabbitMQ's 30-minute consumer timeout). The worker also tells
//     the broker the message is in progress with each heartbeat, so a long
//     task is not redelivered under it.
//   - Re-execution. A failed attempt is retried; a task that fails or is
//     lost --max-failures times fails the job with its last error, so a
//     poison input cannot loop forever. Map outputs live in the blob store,
//     not on the worker's disk as in the paper, so a dead worker's finished
//     map tasks need not run again; a map output that is lost anyway is found
//     by the reducer that cannot read it, and the coordinator runs that map
//     task again, cancels the reduce attempts in flight and re-queues them
//     once the map is done.
//   - Backup tasks. Once every task of a phase has started and at most a
//     tenth remain, a task whose only attempt has run 1.5× the phase's median
//     task time (and at least 2 s) gets one backup attempt on another worker;
//     the first to finish wins, the other is cancelled (a fan-out control
//     message) and its work counted as wasted. The paper reports 44 % longer
//     sorts without them.
//   - Duplicates. Every message may arrive twice. A task message for an
//     attempt that is no longer queued (lost, or run by another worker) is
//     cancelled when its "started" event arrives; a "done" for a task
//     already done is recorded as late. Map outputs are named by attempt, so
//     two copies never overwrite each other, and reduce parts are identical.
//   - Coordinator restart. Jobs and attempts are in SQL (migrations/); the
//     worker events that arrived meanwhile wait in the durable event group;
//     heartbeats are not stored, so after a restart every running attempt
//     is granted one lease of grace. An attempt recorded but not yet
//     published (a crash between the two) is published at the next tick:
//     the attempts table doubles as the outbox.
//   - Hostile messages. With --cluster-key every message on the broker
//     (tasks, events, heartbeats, cancellations) is sealed with the
//     platform's one peer mechanism, auth.SealDatagram (an HMAC tag under a
//     key derived from the cluster key): a process without the key cannot
//     forge one, and a message without a valid tag is dropped and counted
//     (scalelab_mapreduce_rejected_messages_total). Whatever its tag, a
//     message is parsed and bounded before it touches state; one that names
//     no known job or attempt is dropped; and a "done" finishes a task only
//     if its output is in the blob store with the size it reports. A
//     replayed message changes nothing (every change is conditional on the
//     attempt's state). Without a key — `up`, loopback demos — the
//     coordinator says so at start. Submitting a job reads files at any path
//     the workers can see, so it needs the admin token.
//
// Deterministic jobs give byte-identical output whatever failed; the tests
// (MIT 6.5840's lab 1 checks, on embedded NATS and RabbitMQ) crash and
// stall workers at random and compare with a sequential run.
//
// # Jobs
//
// A job is a Go value with Map and Reduce (job.go), optionally a Combiner,
// a Partitioner or a Finisher, registered by name with Register. Shipped:
// wordcount, invertedindex, grep (pattern=), topk (k=) and sort, whose
// sampled range partitioner makes the parts, concatenated, the sorted
// input.
//
// What was written here rather than taken from a library is the subject
// itself: splitting, the sorted-run format, the spill-and-merge collector,
// the k-way merge and the scheduler. One piece a profile asked for: a
// word count's map side spent as much on keeping each key's values for
// the combiner as on counting, so a combiner that declares itself a sum
// (Summer) is collected as one integer per key, held through a pointer so
// that the hot path is a map lookup that does not allocate — 2.4× the map
// throughput.
package mapreduce
