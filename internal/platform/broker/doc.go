// Package broker is scalelab's message broker block: durable topics with
// named consumer groups and at-least-once delivery, on three engines chosen
// by URL.
//
//	"" or embedded://   a NATS server with JetStream running inside this process, data under DATA/nats
//	nats://…            an external NATS server with JetStream
//	amqp://…            RabbitMQ, with publisher confirms
//
// The contract, which one test suite checks against every engine:
//
//  1. Publish returns only after the broker has durably accepted the message
//     (a JetStream publish ack; a RabbitMQ publisher confirm). An error means
//     it may not have been stored: the caller decides whether to retry.
//  2. Consume(topic, group) joins a consumer group. Each message published
//     after the group first existed is delivered to one member of the group
//     at least once; every group gets its own copy of every message.
//  3. A delivered message is settled explicitly: Ack removes it for the
//     group, Nak asks for redelivery. A message that is never settled (the
//     consumer crashed, the connection dropped) is redelivered: after AckWait
//     on NATS (GroupAckWait sets a group's own), when the channel closes on
//     RabbitMQ. A handler that works on one for long says so with
//     Message.InProgress. So handlers must be
//     idempotent, or deduplicate; Message.Redelivered says when to look.
//  4. A handler may settle later, from another goroutine (batching consumers
//     do). At most Prefetch messages are outstanding per member, or n with
//     MemberPrefetch(n): a work queue whose members take one task at a time
//     uses n = 1, so no member sits on tasks an idle one could run.
//  7. Declare(topic, group) creates a group without joining it, so that a
//     producer that starts before its consumers loses nothing on RabbitMQ.
//  5. PublishAsync pipelines: it sends and returns, and Pending.Wait gives
//     the outcome Publish would have. What one goroutine publishes this way
//     is stored in call order.
//  6. Subscribe is fan-out to live listeners, outside any group: each
//     subscriber gets every message published after it started, in the
//     topic's order, the same order for every subscriber, with nothing to
//     settle and nothing kept after it stops. A chat server uses it to hand
//     each message to its own WebSocket connections.
//
// Mapping. On NATS a topic is a stream (subject NS.topic, file storage,
// limits retention: 24 h or 1 GiB), and a group is a durable pull consumer.
// On RabbitMQ a topic is a durable fanout exchange NS.topic and a group is a
// durable queue NS.topic.group bound to it; messages are persistent. The one
// difference that shows: a NATS group created late still sees the stream's
// retained history, while a RabbitMQ group only sees what was published
// after its queue existed. The contract promises only the latter.
//
// Subscribe maps to a JetStream ordered consumer (ephemeral, no acks,
// deliver-new; recreated from the last sequence after a gap) and to a
// RabbitMQ stream queue NS.topic.stream read from "next": a classic queue per
// subscriber would let two publishers' messages reach two subscribers in
// different orders, a stream is one log. Both resume without a gap after a
// reconnect while the broker still holds the messages.
//
// Outages. The NATS client reconnects by itself. For RabbitMQ this package
// redials: a publish on a dead connection fails fast (and the next one, at
// most once per second, dials again), and each consumer loop re-declares its
// queue and resumes after a backoff. Publishers that must not block (click
// events on a redirect path) put a bounded buffer in front of Publish.
package broker
