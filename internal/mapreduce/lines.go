package mapreduce

import (
	"bufio"
	"io"
)

// lineWriter writes output lines, each ended by a newline.
type lineWriter struct {
	w   *bufio.Writer
	err error
}

func newLineWriter(w io.Writer) *lineWriter { return &lineWriter{w: bufio.NewWriterSize(w, 1<<20)} }

func (l *lineWriter) line(b []byte) {
	if l.err != nil {
		return
	}
	if _, l.err = l.w.Write(b); l.err == nil {
		l.err = l.w.WriteByte('\n')
	}
}

func (l *lineWriter) flush() error {
	if l.err != nil {
		return l.err
	}
	return l.w.Flush()
}
