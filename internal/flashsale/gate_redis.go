package flashsale

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

// redisGate is the gate on Redis: each step is one Lua script, which Redis
// runs with nothing else in between, so check and reserve cannot be
// split by a racing buyer. A sale's keys share the hash tag {fs:ID} and
// so one slot of a Redis Cluster.
//
//	{fs:ID}:left   units left
//	{fs:ID}:limit  the per-user limit
//	{fs:ID}:users  hash: user → units held (in flight or sold)
//	{fs:ID}:held   hash: order in flight → "user|unix ms"
//	{fs:ID}:since  sorted set: order in flight, scored by its unix ms
//	{fs:ID}:sold   units sold
//
// Durability is Redis's: with appendonly (AOF) a restarted Redis keeps the
// gate; without it the gate is lost, and the service opens it again from
// SQL at its next start (see doc.go for what that can and cannot repair).
type redisGate struct {
	rdb *redis.Client
	ns  string
}

func newRedisGate(rdb *redis.Client, namespace string) *redisGate {
	return &redisGate{rdb: rdb, ns: namespace}
}

func (g *redisGate) keys(saleID int64) []string {
	tag := "{" + g.ns + ":fs:" + strconv.FormatInt(saleID, 10) + "}"
	return []string{tag + ":left", tag + ":limit", tag + ":users", tag + ":held", tag + ":since", tag + ":sold"}
}

// reserveKeys is what the reservation script touches.
func (g *redisGate) reserveKeys(saleID int64) []string { return g.keys(saleID)[:5] }

// openScript's ARGV: stock, limit, then (order, "user|ms", sold 0/1) per hold.
var openScript = redis.NewScript(`
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
local held, sold = 0, 0
for i = 3, #ARGV, 3 do
  local user = string.sub(ARGV[i+1], 1, string.find(ARGV[i+1], '|', 1, true) - 1)
  redis.call('HINCRBY', KEYS[3], user, 1)
  if ARGV[i+2] == '1' then
    sold = sold + 1
  else
    redis.call('HSET', KEYS[4], ARGV[i], ARGV[i+1])
    redis.call('ZADD', KEYS[5], string.sub(ARGV[i+1], string.find(ARGV[i+1], '|', 1, true) + 1), ARGV[i])
    held = held + 1
  end
end
redis.call('SET', KEYS[1], tonumber(ARGV[1]) - held - sold)
redis.call('SET', KEYS[2], ARGV[2])
redis.call('SET', KEYS[6], sold)
return 1
`)

// reserveScript reserves for one order or several of one sale, in turn,
// in one atomic step. ARGV is (user, order, unix ms) per order; the answer
// is one code per order: 1 admitted, 2 admitted before (the same order),
// -1 sold out, -2 not open, -3 over the limit. "left <= 0" is the whole
// of the oversell question: a ">= 0" here sells one unit more than
// exists. Batching is the caller's choice: the API sends the orders that
// arrived together in one call (a group, as its SQL commits are), which
// costs Redis one script call, not one per order.
var reserveScript = redis.NewScript(reserveLua)

const reserveLua = `
local out = {}
local left = tonumber(redis.call('GET', KEYS[1]))
if left == nil then
  for i = 1, #ARGV, 3 do out[#out + 1] = -2 end
  return out
end
local limit = tonumber(redis.call('GET', KEYS[2]))
local taken = 0
for i = 1, #ARGV, 3 do
  local user, order, ms = ARGV[i], ARGV[i + 1], ARGV[i + 2]
  if redis.call('HEXISTS', KEYS[4], order) == 1 then
    out[#out + 1] = 2
  elseif left <= 0 then
    out[#out + 1] = -1
  elseif tonumber(redis.call('HGET', KEYS[3], user) or '0') >= limit then
    out[#out + 1] = -3
  else
    left = left - 1
    taken = taken + 1
    redis.call('HINCRBY', KEYS[3], user, 1)
    redis.call('HSET', KEYS[4], order, user .. '|' .. ms)
    redis.call('ZADD', KEYS[5], ms, order)
    out[#out + 1] = 1
  end
end
if taken > 0 then redis.call('DECRBY', KEYS[1], taken) end
return out
`

var releaseScript = redis.NewScript(`
local v = redis.call('HGET', KEYS[4], ARGV[1])
if not v then return 0 end
local user = string.sub(v, 1, string.find(v, '|', 1, true) - 1)
redis.call('HDEL', KEYS[4], ARGV[1])
redis.call('ZREM', KEYS[5], ARGV[1])
redis.call('INCR', KEYS[1])
if redis.call('HINCRBY', KEYS[3], user, -1) <= 0 then redis.call('HDEL', KEYS[3], user) end
return 1
`)

var confirmScript = redis.NewScript(`
if redis.call('HDEL', KEYS[4], ARGV[1]) == 0 then return 0 end
redis.call('ZREM', KEYS[5], ARGV[1])
redis.call('INCR', KEYS[6])
return 1
`)

func holdValue(h Hold) string { return h.UserID + "|" + strconv.FormatInt(h.At.UnixMilli(), 10) }

func (g *redisGate) Open(ctx context.Context, saleID int64, stock, perUser int, holds map[int64]Hold) error {
	args := []any{stock, perUser}
	for id, h := range holds {
		sold := "0"
		if h.Sold {
			sold = "1"
		}
		args = append(args, strconv.FormatInt(id, 10), holdValue(h), sold)
	}
	if err := openScript.Run(ctx, g.rdb, g.keys(saleID), args...).Err(); err != nil {
		return fmt.Errorf("flashsale: open the gate on redis: %w", err)
	}
	return nil
}

func (g *redisGate) Reserve(ctx context.Context, saleID int64, userID string, orderID int64, now time.Time) (Admission, error) {
	a, err := g.ReserveBatch(ctx, saleID, []Reservation{{UserID: userID, OrderID: orderID, At: now}})
	if err != nil {
		return 0, err
	}
	return a[0], nil
}

func (g *redisGate) ReserveBatch(ctx context.Context, saleID int64, rs []Reservation) ([]Admission, error) {
	args := make([]any, 0, 3*len(rs))
	for _, r := range rs {
		args = append(args, r.UserID, strconv.FormatInt(r.OrderID, 10), r.At.UnixMilli())
	}
	codes, err := reserveScript.Run(ctx, g.rdb, g.reserveKeys(saleID), args...).Int64Slice()
	if err != nil {
		return nil, fmt.Errorf("flashsale: reserve on redis: %w", err)
	}
	if len(codes) != len(rs) {
		return nil, fmt.Errorf("flashsale: reserve on redis: %d answers for %d orders", len(codes), len(rs))
	}
	out := make([]Admission, len(rs))
	for i, n := range codes {
		switch n {
		case 1, 2:
			out[i] = Admitted
		case -1:
			out[i] = SoldOut
		case -3:
			out[i] = OverLimit
		default:
			out[i] = NotOpen
		}
	}
	return out, nil
}

func (g *redisGate) Release(ctx context.Context, saleID, orderID int64) (bool, error) {
	n, err := releaseScript.Run(ctx, g.rdb, g.keys(saleID), strconv.FormatInt(orderID, 10)).Int()
	if err != nil {
		return false, fmt.Errorf("flashsale: release on redis: %w", err)
	}
	return n == 1, nil
}

func (g *redisGate) Confirm(ctx context.Context, saleID, orderID int64) (bool, error) {
	n, err := confirmScript.Run(ctx, g.rdb, g.keys(saleID), strconv.FormatInt(orderID, 10)).Int()
	if err != nil {
		return false, fmt.Errorf("flashsale: confirm on redis: %w", err)
	}
	return n == 1, nil
}

func (g *redisGate) Held(ctx context.Context, saleID int64) (map[int64]Hold, error) {
	raw, err := g.rdb.HGetAll(ctx, g.keys(saleID)[3]).Result()
	if err != nil {
		return nil, fmt.Errorf("flashsale: read holds on redis: %w", err)
	}
	out := make(map[int64]Hold, len(raw))
	for k, v := range raw {
		if err := parseHold(out, k, v); err != nil {
			return nil, err
		}
	}
	return out, nil
}

func (g *redisGate) Stale(ctx context.Context, saleID int64, cut time.Time, limit int) (map[int64]Hold, error) {
	k := g.keys(saleID)
	ids, err := g.rdb.ZRangeArgs(ctx, redis.ZRangeArgs{Key: k[4], ByScore: true, Start: "-inf", Stop: "(" + strconv.FormatInt(cut.UnixMilli(), 10), Count: int64(limit)}).Result()
	if err != nil || len(ids) == 0 {
		return map[int64]Hold{}, err
	}
	vals, err := g.rdb.HMGet(ctx, k[3], ids...).Result()
	if err != nil {
		return nil, fmt.Errorf("flashsale: read stale holds on redis: %w", err)
	}
	out := make(map[int64]Hold, len(ids))
	for i, v := range vals {
		if s, ok := v.(string); ok { // nil: settled in between
			if err := parseHold(out, ids[i], s); err != nil {
				return nil, err
			}
		}
	}
	return out, nil
}

func parseHold(out map[int64]Hold, k, v string) error {
	id, err1 := strconv.ParseInt(k, 10, 64)
	user, ms, ok := strings.Cut(v, "|")
	at, err2 := strconv.ParseInt(ms, 10, 64)
	if err1 != nil || err2 != nil || !ok {
		return fmt.Errorf("flashsale: a hold on redis reads %q=%q", k, v)
	}
	out[id] = Hold{UserID: user, At: time.UnixMilli(at)}
	return nil
}

func (g *redisGate) Units(ctx context.Context, saleID int64) (int, int, error) {
	k := g.keys(saleID)
	vals, err := g.rdb.MGet(ctx, k[0], k[5]).Result()
	if err != nil {
		return 0, 0, fmt.Errorf("flashsale: read units on redis: %w", err)
	}
	var n [2]int
	for i, v := range vals {
		if s, ok := v.(string); ok {
			if n[i], err = strconv.Atoi(s); err != nil {
				return 0, 0, fmt.Errorf("flashsale: units on redis read %q", s)
			}
		}
	}
	return n[0], n[1], nil
}

// drop removes a sale's keys (tests).
func (g *redisGate) drop(ctx context.Context, saleID int64) error {
	return g.rdb.Del(ctx, g.keys(saleID)...).Err()
}
