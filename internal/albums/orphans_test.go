package albums

import (
	"bytes"
	"context"
	"errors"
	"testing"
	"time"

	"github.com/scalelab/scalelab/internal/platform/blob"
	"github.com/scalelab/scalelab/internal/platform/host"
	"github.com/scalelab/scalelab/internal/platform/snowflake"
)

// Observed: after kill -9 mid-upload, 436 images for 407 albums, never
// collected. An image no album points at is removed once older than the
// grace period; images of albums, young orphans (an upload may still be on
// its way to its insert) and keys that are not album images stay.
func TestOrphanImagesAreCollected(t *testing.T) {
	cfg := testConfig()
	cfg.CollectEvery = 0 // driven below
	var svc *Service
	var blobs blob.Store
	start(t, host.Engines{}, cfg, func(s *Service, d *host.Deps) { svc, blobs = s, d.Blob })
	ctx := context.Background()
	img := pngImage(t, 8, 8)
	a, err := svc.Create(ctx, Profile{Artist: "Nina Simone", Title: "Pastel Blues", Year: 1965}, img, "image/png")
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	put := func(key string) {
		if _, err := blobs.Put(ctx, key, bytes.NewReader(img), int64(len(img)), "image/png"); err != nil {
			t.Fatal(err)
		}
	}
	epoch := svc.ids.Epoch()
	oldOrphan := int64(snowflake.FirstID(now.Add(-time.Hour), epoch)) + 7
	youngOrphan := int64(snowflake.FirstID(now, epoch)) + 7
	put(imageKey(oldOrphan))
	put(imageKey(youngOrphan))
	put("albums/not-an-id")
	removed, err := svc.CollectOrphans(ctx, now)
	if err != nil || removed != 1 {
		t.Fatalf("removed %d (%v), want the one old orphan", removed, err)
	}
	if _, err := blobs.Stat(ctx, imageKey(oldOrphan)); !errors.Is(err, blob.ErrNotFound) {
		t.Fatalf("the old orphan is still there: %v", err)
	}
	for _, key := range []string{a.ImageKey, imageKey(youngOrphan), "albums/not-an-id"} {
		if _, err := blobs.Stat(ctx, key); err != nil {
			t.Fatalf("%s was removed: %v", key, err)
		}
	}
	if removed, err := svc.CollectOrphans(ctx, now); err != nil || removed != 0 {
		t.Fatalf("a second pass removed %d (%v)", removed, err)
	}
}
