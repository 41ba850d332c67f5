package mapreduce

import "testing"

func TestS3InputGoesThroughTheBlobStore(t *testing.T) {
	for _, c := range []struct{ input, blob, want string }{
		{"/data/in", "", "/data/in"},
		{"blob:corpus/", "s3://b", "blob:corpus/"},
		{"s3://b/corpus/2026/", "s3://b?endpoint=http://127.0.0.1:9000", "blob:corpus/2026/"},
		{"s3://b", "s3://b", "blob:"},
		{"s3://other/x", "s3://b", ""},
		{"s3://b/x", "file:///srv/blobs", ""},
		{"s3://b/x", "", ""},
	} {
		got, err := s3Input(c.input, c.blob)
		if c.want == "" {
			if err == nil {
				t.Errorf("%s with --blob %q: accepted as %q", c.input, c.blob, got)
			}
			continue
		}
		if err != nil || got != c.want {
			t.Errorf("%s with --blob %q: %q, %v; want %q", c.input, c.blob, got, err, c.want)
		}
	}
}
