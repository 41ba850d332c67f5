package cli

import (
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

const module = "github.com/scalelab/scalelab/internal/"

// The layers of GUIDE.md, enforced: internal/platform imports no system,
// and no system imports another. (The CLI, the lab and the console may
// import any system; they are not checked here.)
func TestLayers(t *testing.T) {
	root := filepath.Join("..")
	entries, err := os.ReadDir(root)
	if err != nil {
		t.Fatal(err)
	}
	upper := map[string]bool{"cli": true, "lab": true, "console": true}
	systems := map[string]bool{}
	for _, e := range entries {
		if e.IsDir() && e.Name() != "platform" && !upper[e.Name()] {
			systems[e.Name()] = true
		}
	}
	checked := 0
	err = filepath.WalkDir(root, func(path string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() || !strings.HasSuffix(path, ".go") {
			return err
		}
		rel, _ := filepath.Rel(root, path)
		top := strings.Split(filepath.ToSlash(rel), "/")[0]
		if upper[top] {
			return nil
		}
		f, err := parser.ParseFile(token.NewFileSet(), path, nil, parser.ImportsOnly)
		if err != nil {
			return err
		}
		checked++
		for _, imp := range f.Imports {
			p, _ := strconv.Unquote(imp.Path.Value)
			target, ok := strings.CutPrefix(p, module)
			if !ok {
				continue
			}
			other := strings.Split(target, "/")[0]
			switch {
			case top == "platform" && systems[other]:
				t.Errorf("%s: the platform imports the system %s", rel, other)
			case systems[top] && systems[other] && other != top:
				t.Errorf("%s: the system %s imports the system %s", rel, top, other)
			case !upper[top] && upper[other]:
				t.Errorf("%s: imports %s, a layer above it", rel, other)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if checked < 50 || len(systems) < 5 {
		t.Fatalf("checked %d files in %d systems: the walk missed the tree", checked, len(systems))
	}
}
