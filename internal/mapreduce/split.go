package mapreduce

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
)

// Split is one map task's input: the records (lines) of File that start
// at a byte in [Offset, Offset+Length). Splits are cut by size alone,
// without reading the file; the line boundary is found by the reader
// (Hadoop's rule): a split not at the file's start skips the line that
// began before it, and every split reads on past its end to finish the
// line it started. So each line is read by exactly one split, the one
// holding its first byte.
type Split struct {
	File   string `json:"file"`
	Offset int64  `json:"offset"`
	Length int64  `json:"length"`
}

// InputFile is a file to split, with its size.
type InputFile struct {
	Name string
	Size int64
}

// PlanSplits cuts files into splits of at most size bytes, in order. An
// empty file has no split.
func PlanSplits(files []InputFile, size int64) []Split {
	var out []Split
	for _, f := range files {
		for off := int64(0); off < f.Size; off += size {
			out = append(out, Split{File: f.Name, Offset: off, Length: min(size, f.Size-off)})
		}
	}
	return out
}

// ErrRecordTooLong is a line longer than the record limit.
var ErrRecordTooLong = errors.New("mapreduce: record too long")

// ReadSplit calls fn with each record of sp, read from r (the whole file),
// in order. A line longer than maxRecord bytes fails the split with
// ErrRecordTooLong, naming the file and offset, rather than being held in
// memory whole. The record's Data is valid only during fn.
func ReadSplit(r io.ReadSeeker, sp Split, maxRecord int, fn func(Record) error) error {
	start := sp.Offset
	if start > 0 {
		start-- // a line starting exactly at Offset is ours: look at the byte before
	}
	if _, err := r.Seek(start, io.SeekStart); err != nil {
		return fmt.Errorf("mapreduce: seek %s to %d: %w", sp.File, start, err)
	}
	br := bufio.NewReaderSize(r, int(min(max(sp.Length, 4<<10), 1<<20))) // a small split needs no large buffer
	pos := start
	if sp.Offset > 0 {
		n, err := skipLine(br)
		pos += n
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return fmt.Errorf("mapreduce: read %s: %w", sp.File, err)
		}
	}
	end := sp.Offset + sp.Length
	var line []byte
	for pos < end {
		line = line[:0]
		n, err := readLine(br, &line, maxRecord)
		if errors.Is(err, ErrRecordTooLong) {
			return fmt.Errorf("%w: the line at byte %d of %s is longer than %d bytes", ErrRecordTooLong, pos, sp.File, maxRecord)
		}
		if err != nil && err != io.EOF {
			return fmt.Errorf("mapreduce: read %s: %w", sp.File, err)
		}
		if n > 0 {
			if ferr := fn(Record{File: sp.File, Offset: pos, Data: bytes.TrimSuffix(line, []byte{'\n'})}); ferr != nil {
				return ferr
			}
		}
		pos += n
		if err == io.EOF {
			return nil
		}
	}
	return nil
}

// skipLine reads through the next newline, holding nothing.
func skipLine(br *bufio.Reader) (int64, error) {
	var n int64
	for {
		chunk, err := br.ReadSlice('\n')
		n += int64(len(chunk))
		if err == bufio.ErrBufferFull {
			continue
		}
		return n, err
	}
}

// readLine appends the next line, newline included, to *line; at most
// limit bytes of it (then ErrRecordTooLong).
func readLine(br *bufio.Reader, line *[]byte, limit int) (int64, error) {
	var n int64
	for {
		chunk, err := br.ReadSlice('\n')
		n += int64(len(chunk))
		if len(*line)+len(chunk) > limit+1 { // +1: the newline is not the record's
			return n, ErrRecordTooLong
		}
		*line = append(*line, chunk...)
		if err == bufio.ErrBufferFull {
			continue
		}
		return n, err
	}
}
