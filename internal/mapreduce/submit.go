package mapreduce

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/scalelab/scalelab/internal/platform/apperr"
	"github.com/scalelab/scalelab/internal/platform/blob"
)

// s3Input maps an input given as s3://BUCKET/PREFIX to the blob store's
// "blob:PREFIX" when the store is that bucket (--blob s3://BUCKET?…):
// workers read inputs through the one store they all have.
func s3Input(input, blobURL string) (string, error) {
	rest, ok := strings.CutPrefix(input, "s3://")
	if !ok {
		return input, nil
	}
	bucket, prefix, _ := strings.Cut(rest, "/")
	storeBucket, _, _ := strings.Cut(strings.TrimPrefix(blobURL, "s3://"), "?")
	if !strings.HasPrefix(blobURL, "s3://") || bucket != storeBucket {
		return "", apperr.E(apperr.Invalid, "input %s: the workers read S3 through the blob store; run with --blob s3://%s?… (now %q)", input, bucket, blobURL)
	}
	return "blob:" + prefix, nil
}

// SubmitRequest is a job to run.
type SubmitRequest struct {
	Job    string `json:"job"`
	Params Params `json:"params,omitempty"`
	// Input is a file or a directory (every regular file under it, in
	// name order) that every worker can read at the same path, or
	// "blob:PREFIX" for the objects under PREFIX in the blob store
	// (s3://BUCKET/PREFIX when the blob store is that bucket).
	Input     string `json:"input"`
	Reducers  int    `json:"reducers"`
	SplitSize int64  `json:"split_size,omitempty"` // default 64 MiB
	MaxRecord int    `json:"max_record,omitempty"` // the longest line; default 64 MiB
	Memory    int    `json:"memory,omitempty"`     // a map task's pair buffer; default 64 MiB
}

// Limits of a submission: a job is one row and one spec object, so its
// split list must stay a reasonable document.
const (
	maxReducers = 10_000
	maxSplits   = 100_000
	minSplit    = 4 << 10
)

func (r *SubmitRequest) defaults() error {
	if r.SplitSize == 0 {
		r.SplitSize = 64 << 20
	}
	if r.MaxRecord == 0 {
		r.MaxRecord = 64 << 20
	}
	if r.Memory == 0 {
		r.Memory = 64 << 20
	}
	switch {
	case r.Reducers < 1 || r.Reducers > maxReducers:
		return apperr.E(apperr.Invalid, "reducers must be 1–%d, not %d", maxReducers, r.Reducers)
	case r.SplitSize < minSplit:
		return apperr.E(apperr.Invalid, "split_size must be at least %d bytes", minSplit)
	case r.MaxRecord < 1 || r.MaxRecord > 1<<30:
		return apperr.E(apperr.Invalid, "max_record must be 1 byte to 1 GiB")
	case r.Memory < 1<<10 || r.Memory > 4<<30:
		return apperr.E(apperr.Invalid, "memory must be 1 KiB to 4 GiB")
	case r.Input == "":
		return apperr.E(apperr.Invalid, "give the input: a path or blob:PREFIX")
	}
	return nil
}

func newJobID() string {
	var b [6]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// resolveInput lists the input's files: the root every worker opens them
// under, and each file's name below it with its size.
func resolveInput(ctx context.Context, store blob.Store, input string) (string, []InputFile, error) {
	if prefix, ok := strings.CutPrefix(input, "blob:"); ok {
		if prefix != "" && !strings.HasSuffix(prefix, "/") {
			prefix += "/"
		}
		var files []InputFile
		err := store.List(ctx, prefix, func(key string) error {
			info, err := store.Stat(ctx, key)
			if errors.Is(err, blob.ErrNotFound) {
				return nil
			}
			if err != nil {
				return err
			}
			files = append(files, InputFile{Name: strings.TrimPrefix(key, prefix), Size: info.Size})
			return nil
		})
		if err != nil {
			return "", nil, fmt.Errorf("mapreduce: list input %s: %w", input, err)
		}
		sort.Slice(files, func(i, j int) bool { return files[i].Name < files[j].Name })
		if len(files) == 0 {
			return "", nil, apperr.E(apperr.Invalid, "no objects under %s", input)
		}
		return "blob:" + prefix, files, nil
	}
	abs, err := filepath.Abs(input)
	if err != nil {
		return "", nil, apperr.E(apperr.Invalid, "input %q: %v", input, err)
	}
	st, err := os.Stat(abs)
	if err != nil {
		return "", nil, apperr.E(apperr.Invalid, "input %q: %v", input, err)
	}
	if !st.IsDir() {
		return filepath.Dir(abs), []InputFile{{Name: filepath.Base(abs), Size: st.Size()}}, nil
	}
	var files []InputFile
	err = filepath.WalkDir(abs, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.Type().IsRegular() {
			return nil
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(abs, path)
		files = append(files, InputFile{Name: filepath.ToSlash(rel), Size: info.Size()})
		return nil
	})
	if err != nil {
		return "", nil, apperr.E(apperr.Invalid, "input %q: %v", input, err)
	}
	if len(files) == 0 {
		return "", nil, apperr.E(apperr.Invalid, "input %q holds no files", input)
	}
	return abs, files, nil
}

// openInput opens one file of a job's input.
func openInput(ctx context.Context, store blob.Store, root, name string) (io.ReadSeekCloser, error) {
	if !filepath.IsLocal(filepath.FromSlash(name)) {
		return nil, fmt.Errorf("mapreduce: input name %q leaves its root", name)
	}
	if prefix, ok := strings.CutPrefix(root, "blob:"); ok {
		return store.Open(ctx, prefix+name)
	}
	return os.Open(filepath.Join(root, filepath.FromSlash(name)))
}

// sampleRecords reads up to perSplit records from each of up to 32 splits
// spread over the input: the sort job's partitioner is cut from them.
func sampleRecords(ctx context.Context, store blob.Store, root string, splits []Split, maxRecord int) ([][]byte, error) {
	const picks, perSplit = 32, 1000
	var sample [][]byte
	step := max(1, len(splits)/picks)
	for i := 0; i < len(splits); i += step {
		sp := splits[i]
		f, err := openInput(ctx, store, root, sp.File)
		if err != nil {
			return nil, fmt.Errorf("mapreduce: sample %s: %w", sp.File, err)
		}
		n := 0
		errEnough := errors.New("enough")
		err = ReadSplit(f, sp, maxRecord, func(r Record) error {
			sample = append(sample, bytes.Clone(r.Data))
			if n++; n == perSplit {
				return errEnough
			}
			return nil
		})
		f.Close()
		if err != nil && !errors.Is(err, errEnough) {
			return nil, err
		}
	}
	return sample, nil
}

// prepare turns a request into a job spec: the job checked, its input
// listed and split, and a range partitioner cut from a sample when the
// job wants one.
func prepare(ctx context.Context, store blob.Store, blobURL string, req SubmitRequest) (JobSpec, error) {
	if err := req.defaults(); err != nil {
		return JobSpec{}, err
	}
	var err error
	if req.Input, err = s3Input(req.Input, blobURL); err != nil {
		return JobSpec{}, err
	}
	def, err := Lookup(req.Job)
	if err != nil {
		return JobSpec{}, apperr.E(apperr.Invalid, "%v", err)
	}
	params := Params{}
	for k, v := range req.Params {
		params[k] = v
	}
	if _, err := def.New(params); err != nil {
		return JobSpec{}, apperr.E(apperr.Invalid, "%v", err)
	}
	root, files, err := resolveInput(ctx, store, req.Input)
	if err != nil {
		return JobSpec{}, err
	}
	splits := PlanSplits(files, req.SplitSize)
	if len(splits) > maxSplits {
		return JobSpec{}, apperr.E(apperr.Invalid, "%d splits; at most %d (raise split_size)", len(splits), maxSplits)
	}
	if def.Cuts != nil {
		sample, err := sampleRecords(ctx, store, root, splits, req.MaxRecord)
		if err != nil {
			return JobSpec{}, apperr.E(apperr.Invalid, "sampling the input: %v", err)
		}
		params["cuts"] = EncodeCuts(def.Cuts(sample, req.Reducers))
		if _, err := def.New(params); err != nil {
			return JobSpec{}, fmt.Errorf("mapreduce: the sampled partitioner: %w", err)
		}
	}
	return JobSpec{ID: newJobID(), Job: req.Job, Params: params, Reducers: req.Reducers, InputRoot: root,
		Splits: splits, MaxRecord: req.MaxRecord, Memory: req.Memory}, nil
}

func putJSON(ctx context.Context, store blob.Store, key string, v any) error {
	raw, err := json.Marshal(v)
	if err != nil {
		return err
	}
	if _, err := store.Put(ctx, key, bytes.NewReader(raw), int64(len(raw)), "application/json"); err != nil {
		return fmt.Errorf("mapreduce: put %s: %w", key, err)
	}
	return nil
}
