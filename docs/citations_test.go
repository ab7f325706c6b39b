package docs

import (
	"bufio"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// cite matches a citation of a section of one of the documents here.
var cite = regexp.MustCompile(`docs/(protocol|design|architecture)\.md#([A-Za-z0-9_-]+)`)

// anchors returns the anchors of a Markdown file: GitHub's slugs of its
// headings and its explicit <a id="..."> targets.
func anchors(t *testing.T, file string) map[string]bool {
	f, err := os.Open(file)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	out := map[string]bool{}
	id := regexp.MustCompile(`<a id="([^"]+)">`)
	drop := regexp.MustCompile(`[^a-z0-9 _-]`)
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		for _, m := range id.FindAllStringSubmatch(line, -1) {
			out[m[1]] = true
		}
		if h, ok := strings.CutPrefix(strings.TrimLeft(line, "#"), " "); ok && strings.HasPrefix(line, "#") {
			slug := drop.ReplaceAllString(strings.ToLower(h), "")
			out[strings.ReplaceAll(slug, " ", "-")] = true
		}
	}
	return out
}

// TestCitationsResolve checks that every docs/X.md#anchor the repository
// cites exists, and that nothing cites notes that live outside the
// repository: it must be self-contained.
func TestCitationsResolve(t *testing.T) {
	docs := map[string]map[string]bool{}
	for _, d := range []string{"protocol", "design", "architecture"} {
		if _, err := os.Stat(d + ".md"); err == nil {
			docs[d] = anchors(t, d+".md")
		}
	}
	outside := regexp.MustCompile(`\b(PROTOCOL|STYLE)\.md\b`)
	checked := 0
	err := filepath.WalkDir("..", func(path string, e fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if e.IsDir() && (e.Name() == ".git" || e.Name() == "testdata" && strings.Contains(path, "fuzz")) {
			return filepath.SkipDir
		}
		ext := filepath.Ext(path)
		if e.IsDir() || ext != ".go" && ext != ".md" && ext != ".txt" && ext != ".yaml" && ext != ".sh" {
			return nil
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		for n, line := range strings.Split(string(b), "\n") {
			if outside.MatchString(line) && !strings.HasSuffix(path, "citations_test.go") {
				t.Errorf("%s:%d cites a file outside the repository: %s", path, n+1, strings.TrimSpace(line))
			}
			for _, m := range cite.FindAllStringSubmatch(line, -1) {
				checked++
				a, ok := docs[m[1]]
				if !ok {
					t.Errorf("%s:%d cites docs/%s.md, which does not exist", path, n+1, m[1])
				} else if !a[m[2]] {
					t.Errorf("%s:%d cites docs/%s.md#%s: no such section", path, n+1, m[1], m[2])
				}
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if checked < 20 {
		t.Fatalf("only %d citations found: the walk did not see the repository", checked)
	}
}
