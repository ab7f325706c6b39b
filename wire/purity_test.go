package wire

import (
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// TestPureCore guards the design mechanically (docs/design.md#pure-core): the
// packages under wire/, node/ and sim/ (tests included) have no go
// statements, no clocks or timers, no global randomness and no imports of
// net, os or sync. Time and randomness come in as arguments.
func TestPureCore(t *testing.T) {
	bannedImports := map[string]bool{
		"net": true, "os": true, "os/exec": true, "sync": true, "sync/atomic": true,
		"math/rand": true, "crypto/rand": true, "syscall": true, "net/http": true,
		"io/ioutil": true, "unsafe": true,
	}
	// Calls that read the clock or start timers.
	bannedCalls := map[string]bool{
		"time.Now": true, "time.Sleep": true, "time.After": true, "time.AfterFunc": true,
		"time.NewTimer": true, "time.NewTicker": true, "time.Tick": true, "time.Since": true, "time.Until": true,
	}
	// math/rand/v2's top-level functions use a global source; only
	// constructors of explicit sources are allowed.
	allowedRandV2 := map[string]bool{"New": true, "NewPCG": true, "NewChaCha8": true, "Rand": true, "Source": true, "PCG": true}
	checked := 0
	for _, dir := range []string{".", "../node", "../sim"} {
		err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			if d.IsDir() && d.Name() == "testdata" {
				return filepath.SkipDir
			}
			if d.IsDir() || !strings.HasSuffix(path, ".go") {
				return nil
			}
			checked++
			f, err := parser.ParseFile(token.NewFileSet(), path, nil, 0)
			if err != nil {
				return err
			}
			names := map[string]string{} // local name -> import path
			for _, imp := range f.Imports {
				p, _ := strconv.Unquote(imp.Path.Value)
				if bannedImports[p] {
					t.Errorf("%s imports %q", path, p)
				}
				name := filepath.Base(p)
				if p == "math/rand/v2" {
					name = "rand"
				}
				if imp.Name != nil {
					name = imp.Name.Name
				}
				names[name] = p
			}
			ast.Inspect(f, func(n ast.Node) bool {
				switch n := n.(type) {
				case *ast.GoStmt:
					t.Errorf("%s: go statement", path)
				case *ast.SelectorExpr:
					id, ok := n.X.(*ast.Ident)
					if !ok {
						return true
					}
					switch names[id.Name] {
					case "time":
						if bannedCalls["time."+n.Sel.Name] {
							t.Errorf("%s: uses time.%s", path, n.Sel.Name)
						}
					case "math/rand/v2":
						if !allowedRandV2[n.Sel.Name] {
							t.Errorf("%s: uses global rand.%s", path, n.Sel.Name)
						}
					}
				}
				return true
			})
			return nil
		})
		if err != nil && !strings.Contains(err.Error(), "no such file") {
			t.Fatal(err)
		}
	}
	if checked == 0 {
		t.Fatal("no Go files checked")
	}
}
