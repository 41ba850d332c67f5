package raftkv

import (
	"fmt"
	"log/slog"
)

// raftLogger routes etcd raft's logger to slog (warnings and up).
type raftLogger struct{ l *slog.Logger }

func (r raftLogger) Debug(v ...any)                   {}
func (r raftLogger) Debugf(format string, v ...any)   {}
func (r raftLogger) Info(v ...any)                    {}
func (r raftLogger) Infof(format string, v ...any)    {}
func (r raftLogger) Warning(v ...any)                 { r.l.Warn(fmt.Sprint(v...)) }
func (r raftLogger) Warningf(format string, v ...any) { r.l.Warn(fmt.Sprintf(format, v...)) }
func (r raftLogger) Error(v ...any)                   { r.l.Error(fmt.Sprint(v...)) }
func (r raftLogger) Errorf(format string, v ...any)   { r.l.Error(fmt.Sprintf(format, v...)) }
func (r raftLogger) Fatal(v ...any)                   { r.l.Error(fmt.Sprint(v...)); panic(fmt.Sprint(v...)) }
func (r raftLogger) Fatalf(format string, v ...any)   { r.Fatal(fmt.Sprintf(format, v...)) }
func (r raftLogger) Panic(v ...any)                   { r.Fatal(v...) }
func (r raftLogger) Panicf(format string, v ...any)   { r.Fatal(fmt.Sprintf(format, v...)) }
