package mapreduce

import (
	"bytes"
	"errors"
	"fmt"
	"math/rand/v2"
	"testing"
)

// Every line of a file is read by exactly one split, with its offset,
// whatever the split size: lines of random lengths (empty ones included),
// with and without a final newline, split sizes from 1 byte to more than
// the file, so that boundaries fall on line starts, newlines and inside
// lines.
func TestSplitsReadEveryLineOnce(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for trial := 0; trial < 200; trial++ {
		var file bytes.Buffer
		var want []Record
		lines := rng.IntN(12)
		lastEnded := false
		for i := 0; i < lines; i++ {
			line := bytes.Repeat([]byte{byte('a' + i%26)}, rng.IntN(9))
			want = append(want, Record{Offset: int64(file.Len()), Data: line})
			file.Write(line)
			lastEnded = i < lines-1 || rng.IntN(2) == 0
			if lastEnded {
				file.WriteByte('\n')
			}
		}
		if lines > 0 && len(want[lines-1].Data) == 0 && !lastEnded {
			want = want[:lines-1] // an empty last line without a newline is no line
		}
		data := file.Bytes()
		for size := int64(1); size <= int64(len(data))+2; size++ {
			var got []Record
			for _, sp := range PlanSplits([]InputFile{{Name: "f", Size: int64(len(data))}}, size) {
				err := ReadSplit(bytes.NewReader(data), sp, 100, func(r Record) error {
					got = append(got, Record{Offset: r.Offset, Data: bytes.Clone(r.Data)})
					return nil
				})
				if err != nil {
					t.Fatal(err)
				}
			}
			if fmt.Sprint(got) != fmt.Sprint(want) {
				t.Fatalf("file %q, splits of %d: got %v, want %v", data, size, got, want)
			}
		}
	}
}

func TestSplitPlan(t *testing.T) {
	got := PlanSplits([]InputFile{{"a", 10}, {"empty", 0}, {"b", 4}}, 4)
	want := []Split{{"a", 0, 4}, {"a", 4, 4}, {"a", 8, 2}, {"b", 0, 4}}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("got %v, want %v", got, want)
	}
}

// A line over the limit fails its split with a clear error, without being
// held whole; a split that only skips through it does not fail.
func TestSplitRecordTooLong(t *testing.T) {
	data := []byte("short\n" + string(bytes.Repeat([]byte("x"), 5000)) + "\nend\n")
	err := ReadSplit(bytes.NewReader(data), Split{File: "big", Offset: 0, Length: int64(len(data))}, 1000, func(Record) error { return nil })
	if !errors.Is(err, ErrRecordTooLong) || !bytes.Contains([]byte(err.Error()), []byte("byte 6 of big")) {
		t.Fatalf("err = %v", err)
	}
	var got []string
	err = ReadSplit(bytes.NewReader(data), Split{File: "big", Offset: 100, Length: int64(len(data)) - 100}, 1000, func(r Record) error {
		got = append(got, string(r.Data))
		return nil
	})
	if err != nil || fmt.Sprint(got) != "[end]" {
		t.Fatalf("a split inside the long line: %v %v", got, err)
	}
}
