package albums

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/scalelab/scalelab/internal/platform/blob"
	"github.com/scalelab/scalelab/internal/platform/proctest"
	"github.com/scalelab/scalelab/internal/platform/testsvc"
)

// Observed: kill -9 mid-upload left 436 images for 407 albums and a
// temporary file, and nothing ever collected them. The album store is
// killed with sixteen uploads in flight: no album points at a missing
// image (the image is written before the row), and once it runs again the
// collector takes the garbage — images no album points at and temporary
// files of uploads cut short — until images and albums match one to one.
func TestKilledMidUploadLeavesOnlyGarbage(t *testing.T) {
	data := t.TempDir()
	serve := []string{"albums", "serve", "--data", data}
	p := proctest.Start(t, proctest.FreeAddr(t), append(serve, "--orphan-collect-every", "0")...)
	img := pngImage(t, 300, 300) // large enough that a kill lands mid-write now and then

	// Upload from 16 clients and kill the store mid-stream. A kill that
	// happens to land between uploads leaves no garbage to collect; it is
	// repeated (with the store restarted) up to five times.
	var rows, images map[int64]bool
	var temps int
	for attempt := 1; ; attempt++ {
		killMidUpload(t, p, img)
		rows, images, temps = crashState(t, data)
		for id := range rows {
			if !images[id] {
				t.Fatalf("album %d points at an image that is not there", id)
			}
		}
		t.Logf("after kill %d: %d albums, %d images, %d temporary files", attempt, len(rows), len(images), temps)
		if len(images)-len(rows)+temps > 0 {
			break
		}
		if attempt == 5 {
			t.Fatal("in 5 kills mid-upload, none left garbage: the kill never landed mid-write")
		}
		p.Restart()
	}

	p2 := proctest.Start(t, proctest.FreeAddr(t), append(serve, "--orphan-collect-every", "100ms", "--orphan-grace", "1s")...)
	testsvc.WaitUntil(t, "images and albums to match one to one", 30*time.Second, func() bool {
		rows, images, temps := crashState(t, data)
		return len(rows) == len(images) && temps == 0
	})
	rows, _, _ = crashState(t, data)
	for id := range rows {
		resp, err := http.Get(fmt.Sprintf("%s/api/v1/albums/%d/image", p2.URL(), id))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("album %d's image: %d", id, resp.StatusCode)
		}
	}
	orphans := len(images) - len(rows)
	if v, ok := scrape(t, p2.URL()).Value("scalelab_albums_orphan_images_removed_total"); !ok || int(v) != orphans {
		t.Errorf("the collector exported %v removals (exported: %v), want %d", v, ok, orphans)
	}
}

// crashState reads the data directory as the killed process left it: the
// album IDs with a row, the album IDs with an image, and the temporary files.
func crashState(t *testing.T, data string) (rows, images map[int64]bool, temps int) {
	t.Helper()
	st := openTestStore(t, "sqlite://"+filepath.Join(data, "scalelab.db"))
	rs, err := st.db.QueryContext(context.Background(), `SELECT album_id FROM albums`)
	if err != nil {
		t.Fatal(err)
	}
	rows = map[int64]bool{}
	for rs.Next() {
		var id int64
		if err := rs.Scan(&id); err != nil {
			t.Fatal(err)
		}
		rows[id] = true
	}
	rs.Close()

	images = map[int64]bool{}
	local, err := blob.NewLocal(filepath.Join(data, "blobs"))
	if err != nil {
		t.Fatal(err)
	}
	var keys []string
	if err := local.List(context.Background(), imagePrefix, func(key string) error { keys = append(keys, key); return nil }); err != nil {
		t.Fatal(err)
	}
	for _, k := range keys {
		var id int64
		if _, err := fmt.Sscanf(k, imagePrefix+"%d", &id); err == nil {
			images[id] = true
		}
	}
	entries, err := os.ReadDir(filepath.Join(data, "blobs", ".tmp"))
	if err != nil {
		t.Fatal(err)
	}
	return rows, images, len(entries)
}

// killMidUpload uploads from 16 clients until 200 more albums are in, then
// kills the store with SIGKILL while the uploads are in flight.
func killMidUpload(t *testing.T, p *proctest.Process, img []byte) {
	t.Helper()
	var done atomic.Int64
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				ct, body := multipartBody(t, profile("Artist", "Crash", 2001), part{name: "image", filename: "c.png", body: img})
				resp, err := http.Post(p.URL()+"/api/v1/albums", ct, bytes.NewReader(body))
				if err != nil {
					return // the process is gone
				}
				resp.Body.Close()
				if resp.StatusCode == http.StatusCreated {
					done.Add(1)
				}
			}
		}()
	}
	testsvc.WaitUntil(t, "200 uploads", 60*time.Second, func() bool { return done.Load() >= 200 })
	p.Kill()
	close(stop)
	wg.Wait()
}
