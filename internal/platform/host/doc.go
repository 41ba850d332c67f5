// Package host runs systems: it opens the engines a system needs from the
// command line (--db, --cache, --broker, --data), gives them to the system
// as Deps, and serves the system's routes behind httpx's operational
// endpoints until the context ends, then shuts down in order: stop taking
// requests, drain in-flight ones, close the systems (which flush their
// buffers and stop their consumers), then close the broker, the cache and the
// database.
//
// A system is anything with a name, routes and a Close; the CLI's `up`
// mounts several under /<name>/ in one process, and `<system> serve` runs
// one at the root. Neither knows more of a system than the System interface,
// so systems never import each other and the host never imports a system.
//
// Files: system.go (the System interface and Factory), engines.go (engine
// flags and URLs, opening them as Deps, their readiness checks and close
// order), serve.go (binding before opening, instrumenting, running one or
// several systems, graceful shutdown, pprof), workers.go (Snowflake worker
// IDs leased per process), cmd.go (the `<system> serve` command).
package host
