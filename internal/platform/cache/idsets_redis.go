package cache

import (
	"context"
	"errors"
	"fmt"
	"strconv"

	"github.com/redis/go-redis/v9"
)

// redisIDSets keeps each set as a sorted set whose members are the IDs as
// 16 hex digits, all with score 0, so that Redis orders them by their
// bytes, which is their numeric order. (A score cannot hold them: a
// Snowflake ID needs 63 bits and a score is a float64, exact to 53.) Beside
// it, a hash KEY:m holds the set's state: b (1 while a rebuild runs) and t
// (the floor, as hex). The hash's existence is the set's, since Redis
// deletes an empty sorted set. Every operation is one Lua script, so a set
// and its state change together.
type redisIDSets struct {
	client *redis.Client
	prefix string
	opts   IDSetOptions
	ttlMS  string
	cap    string
}

func newRedisIDSets(client *redis.Client, prefix string, opts IDSetOptions) *redisIDSets {
	return &redisIDSets{client: client, prefix: prefix, opts: opts,
		ttlMS: strconv.FormatInt(opts.IdleTTL.Milliseconds(), 10), cap: strconv.Itoa(opts.Cap)}
}

func hexID(id int64) string { return fmt.Sprintf("%016x", uint64(id)) }

func parseHexID(s string) (int64, error) {
	u, err := strconv.ParseUint(s, 16, 64)
	return int64(u), err
}

// trimLua trims set z (state m) to cap, raising the floor to the highest
// member dropped.
const trimLua = `
local function trim(z, m, cap)
  local n = redis.call('ZCARD', z)
  if n > cap then
    local cut = redis.call('ZRANGE', z, n - cap - 1, n - cap - 1)[1]
    redis.call('ZREMRANGEBYRANK', z, 0, n - cap - 1)
    local t = redis.call('HGET', m, 't')
    if (not t) or cut > t then redis.call('HSET', m, 't', cut) end
  end
end
local function zadd(z, first, last)
  for j = first, last, 500 do
    local args = {}
    for i = j, math.min(j + 499, last) do
      args[#args + 1] = 0
      args[#args + 1] = ARGV[i]
    end
    redis.call('ZADD', z, unpack(args))
  end
end
`

// KEYS: z1, m1, z2, m2 …  ARGV: cap, ttl, ids…
var addScript = redis.NewScript(trimLua + `
local cap = tonumber(ARGV[1])
for i = 1, #KEYS, 2 do
  local z, m = KEYS[i], KEYS[i + 1]
  if redis.call('EXISTS', m) == 1 then
    zadd(z, 3, #ARGV)
    trim(z, m, cap)
    redis.call('PEXPIRE', z, ARGV[2])
    redis.call('PEXPIRE', m, ARGV[2])
  end
end
return 0`)

// KEYS: z1, m1, …  ARGV: ids…
var removeScript = redis.NewScript(`
for i = 1, #KEYS, 2 do
  if redis.call('EXISTS', KEYS[i + 1]) == 1 then
    redis.call('ZREM', KEYS[i], unpack(ARGV))
  end
end
return 0`)

// KEYS: z, m  ARGV: max (a lex bound), limit, ttl
var rangeScript = redis.NewScript(`
if redis.call('EXISTS', KEYS[2]) == 0 then return false end
local st = redis.call('HMGET', KEYS[2], 'b', 't')
local ids = redis.call('ZREVRANGEBYLEX', KEYS[1], ARGV[1], '-', 'LIMIT', 0, ARGV[2])
redis.call('PEXPIRE', KEYS[1], ARGV[3])
redis.call('PEXPIRE', KEYS[2], ARGV[3])
return {st[1] or '', st[2] or '', ids}`)

// KEYS: z, m  ARGV: ids…
var containsScript = redis.NewScript(`
if redis.call('EXISTS', KEYS[2]) == 0 then return false end
local st = redis.call('HMGET', KEYS[2], 'b', 't')
local in_ = {}
for i = 1, #ARGV do
  if redis.call('ZSCORE', KEYS[1], ARGV[i]) then in_[i] = 1 else in_[i] = 0 end
end
return {st[1] or '', st[2] or '', in_}`)

// KEYS: z, m  ARGV: ttl
var beginScript = redis.NewScript(`
if redis.call('EXISTS', KEYS[2]) == 1 then return 0 end
redis.call('DEL', KEYS[1])
redis.call('HSET', KEYS[2], 'b', '1')
redis.call('PEXPIRE', KEYS[2], ARGV[1])
return 1`)

// KEYS: z, m  ARGV: cap, ttl, floor, ids…
var fillScript = redis.NewScript(trimLua + `
if redis.call('EXISTS', KEYS[2]) == 0 then return 0 end
zadd(KEYS[1], 4, #ARGV)
trim(KEYS[1], KEYS[2], tonumber(ARGV[1]))
local t = redis.call('HGET', KEYS[2], 't')
if (not t) or ARGV[3] > t then redis.call('HSET', KEYS[2], 't', ARGV[3]) end
redis.call('HDEL', KEYS[2], 'b')
redis.call('PEXPIRE', KEYS[1], ARGV[2])
redis.call('PEXPIRE', KEYS[2], ARGV[2])
return 1`)

func (r *redisIDSets) keys(keys []string) []string {
	out := make([]string, 0, 2*len(keys))
	for _, k := range keys {
		out = append(out, r.prefix+k, r.prefix+k+":m")
	}
	return out
}

func hexArgs(head []any, ids []int64) []any {
	for _, id := range ids {
		head = append(head, hexID(id))
	}
	return head
}

// Add implements IDSets.
func (r *redisIDSets) Add(ctx context.Context, keys []string, ids ...int64) error {
	if len(keys) == 0 || len(ids) == 0 {
		return nil
	}
	if err := addScript.Run(ctx, r.client, r.keys(keys), hexArgs([]any{r.cap, r.ttlMS}, ids)...).Err(); err != nil {
		return fmt.Errorf("cache: id sets add: %w", err)
	}
	return nil
}

// Remove implements IDSets.
func (r *redisIDSets) Remove(ctx context.Context, keys []string, ids ...int64) error {
	if len(keys) == 0 || len(ids) == 0 {
		return nil
	}
	if err := removeScript.Run(ctx, r.client, r.keys(keys), hexArgs(nil, ids)...).Err(); err != nil {
		return fmt.Errorf("cache: id sets remove: %w", err)
	}
	return nil
}

// state reads a script's {b, t, list} reply.
func state(v any) (floor int64, list []any, err error) {
	parts, ok := v.([]any)
	if !ok || len(parts) != 3 {
		return 0, nil, fmt.Errorf("cache: id sets: unexpected reply %T", v)
	}
	list, _ = parts[2].([]any)
	if b, _ := parts[0].(string); b == "1" {
		return building, list, nil
	}
	if t, _ := parts[1].(string); t != "" {
		if floor, err = parseHexID(t); err != nil {
			return 0, nil, fmt.Errorf("cache: id sets: bad floor %q: %w", t, err)
		}
	}
	return floor, list, nil
}

// Range implements IDSets.
func (r *redisIDSets) Range(ctx context.Context, key string, below int64, limit int) ([]int64, int64, bool, error) {
	bound := "+"
	if below > 0 {
		bound = "(" + hexID(below)
	}
	v, err := rangeScript.Run(ctx, r.client, r.keys([]string{key}), bound, max(limit, 0), r.ttlMS).Result()
	if errors.Is(err, redis.Nil) {
		return nil, 0, false, nil
	}
	if err != nil {
		return nil, 0, false, fmt.Errorf("cache: id sets range: %w", err)
	}
	floor, list, err := state(v)
	if err != nil {
		return nil, 0, false, err
	}
	ids := make([]int64, 0, len(list))
	for _, m := range list {
		s, _ := m.(string)
		id, err := parseHexID(s)
		if err != nil {
			return nil, 0, false, fmt.Errorf("cache: id sets: bad member %q: %w", s, err)
		}
		ids = append(ids, id)
	}
	return ids, floor, true, nil
}

// Contains implements IDSets.
func (r *redisIDSets) Contains(ctx context.Context, key string, ids []int64) ([]bool, int64, bool, error) {
	if len(ids) == 0 {
		_, floor, ok, err := r.Range(ctx, key, 0, 0)
		return nil, floor, ok, err
	}
	v, err := containsScript.Run(ctx, r.client, r.keys([]string{key}), hexArgs(nil, ids)...).Result()
	if errors.Is(err, redis.Nil) {
		return nil, 0, false, nil
	}
	if err != nil {
		return nil, 0, false, fmt.Errorf("cache: id sets contains: %w", err)
	}
	floor, list, err := state(v)
	if err != nil {
		return nil, 0, false, err
	}
	in := make([]bool, len(ids))
	for i := range in {
		if i < len(list) {
			n, _ := list[i].(int64)
			in[i] = n == 1
		}
	}
	return in, floor, true, nil
}

// Begin implements IDSets.
func (r *redisIDSets) Begin(ctx context.Context, key string) (bool, error) {
	n, err := beginScript.Run(ctx, r.client, r.keys([]string{key}), r.ttlMS).Int()
	if err != nil {
		return false, fmt.Errorf("cache: id sets begin: %w", err)
	}
	return n == 1, nil
}

// Fill implements IDSets.
func (r *redisIDSets) Fill(ctx context.Context, key string, ids []int64, floor int64) error {
	args := hexArgs([]any{r.cap, r.ttlMS, hexID(max(floor, 0))}, ids)
	if err := fillScript.Run(ctx, r.client, r.keys([]string{key}), args...).Err(); err != nil {
		return fmt.Errorf("cache: id sets fill: %w", err)
	}
	return nil
}

// Drop implements IDSets.
func (r *redisIDSets) Drop(ctx context.Context, keys ...string) error {
	if len(keys) == 0 {
		return nil
	}
	if err := r.client.Del(ctx, r.keys(keys)...).Err(); err != nil {
		return fmt.Errorf("cache: id sets drop: %w", err)
	}
	return nil
}
