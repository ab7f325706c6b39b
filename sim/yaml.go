package sim

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/goccy/go-yaml/ast"
	"github.com/goccy/go-yaml/parser"
)

// ScenarioError is a problem in a scenario file, with its position.
type ScenarioError struct {
	File   string
	Line   int    // 1-based; 0 when unknown
	Column int    // 1-based; 0 when unknown
	Field  string // dotted path of the field, as "faults[2].cut"
	Msg    string
}

// Error formats e as "file:line:column: field F: message".
func (e *ScenarioError) Error() string {
	pos := e.File
	if e.Line > 0 {
		pos = fmt.Sprintf("%s:%d:%d", e.File, e.Line, e.Column)
	}
	if e.Field != "" {
		return fmt.Sprintf("%s: field %s: %s", pos, e.Field, e.Msg)
	}
	return fmt.Sprintf("%s: %s", pos, e.Msg)
}

// ynode is a YAML node with its dotted field path, for error messages.
type ynode struct {
	file string
	path string
	n    ast.Node
}

func (y ynode) errf(format string, args ...any) error {
	e := &ScenarioError{File: y.file, Field: y.path, Msg: fmt.Sprintf(format, args...)}
	if y.n != nil {
		if tk := y.n.GetToken(); tk != nil && tk.Position != nil {
			e.Line, e.Column = tk.Position.Line, tk.Position.Column
		}
	}
	return e
}

func (y ynode) line() int {
	if y.n != nil {
		if tk := y.n.GetToken(); tk != nil && tk.Position != nil {
			return tk.Position.Line
		}
	}
	return 0
}

// unwrap skips anchors and tags.
func unwrap(n ast.Node) ast.Node {
	for {
		switch v := n.(type) {
		case *ast.AnchorNode:
			n = v.Value
		case *ast.TagNode:
			n = v.Value
		default:
			return n
		}
	}
}

// parseYAML parses src into its top node.
func parseYAML(file string, src []byte) (ynode, error) {
	f, err := parser.ParseBytes(src, 0)
	if err != nil {
		return ynode{}, &ScenarioError{File: file, Msg: strings.TrimSpace(err.Error())}
	}
	if len(f.Docs) != 1 || f.Docs[0].Body == nil {
		return ynode{}, &ScenarioError{File: file, Msg: "want exactly one YAML document"}
	}
	return ynode{file: file, n: unwrap(f.Docs[0].Body)}, nil
}

// fields returns the keys of a mapping, checking each against allowed.
func (y ynode) fields(allowed ...string) (map[string]ynode, []string, error) {
	m, ok := y.n.(*ast.MappingNode)
	if !ok {
		if mv, ok2 := y.n.(*ast.MappingValueNode); ok2 {
			m = &ast.MappingNode{Values: []*ast.MappingValueNode{mv}}
		} else {
			return nil, nil, y.errf("want a mapping of %s", strings.Join(allowed, ", "))
		}
	}
	out := map[string]ynode{}
	var order []string
	for _, mv := range m.Values {
		key := mv.Key.GetToken().Value
		path := key
		if y.path != "" {
			path = y.path + "." + key
		}
		kn := ynode{file: y.file, path: path, n: mv.Key}
		if !slices.Contains(allowed, key) {
			return nil, nil, kn.errf("unknown field %q (want one of %s)", key, strings.Join(allowed, ", "))
		}
		if _, dup := out[key]; dup {
			return nil, nil, kn.errf("duplicate field %q", key)
		}
		out[key] = ynode{file: y.file, path: path, n: unwrap(mv.Value)}
		order = append(order, key)
	}
	return out, order, nil
}

// list returns the items of a sequence.
func (y ynode) list() ([]ynode, error) {
	s, ok := y.n.(*ast.SequenceNode)
	if !ok {
		return nil, y.errf("want a list")
	}
	out := make([]ynode, len(s.Values))
	for i, v := range s.Values {
		out[i] = ynode{file: y.file, path: fmt.Sprintf("%s[%d]", y.path, i), n: unwrap(v)}
	}
	return out, nil
}

// str returns a scalar's text.
func (y ynode) str() (string, error) {
	switch v := y.n.(type) {
	case *ast.StringNode:
		return v.Value, nil
	case *ast.LiteralNode:
		return v.Value.Value, nil
	case *ast.IntegerNode, *ast.FloatNode, *ast.BoolNode:
		return v.GetToken().Value, nil
	case *ast.NullNode:
		return "", nil
	}
	return "", y.errf("want a scalar value")
}

func (y ynode) int() (int, error) {
	s, err := y.str()
	if err != nil {
		return 0, err
	}
	v, err := strconv.Atoi(s)
	if err != nil || v < 0 {
		return 0, y.errf("want a non-negative integer, got %q", s)
	}
	return v, nil
}

func (y ynode) float() (float64, error) {
	s, err := y.str()
	if err != nil {
		return 0, err
	}
	v, err := strconv.ParseFloat(strings.TrimSuffix(s, "%"), 64)
	if err != nil || v < 0 {
		return 0, y.errf("want a non-negative number, got %q", s)
	}
	if strings.HasSuffix(s, "%") {
		v /= 100
	}
	return v, nil
}

func (y ynode) dur() (time.Duration, error) {
	s, err := y.str()
	if err != nil {
		return 0, err
	}
	d, err := parseDuration(s)
	if err != nil {
		return 0, y.errf("%v", err)
	}
	return d, nil
}

// parseDuration parses a Go duration, also accepting a bare 0.
func parseDuration(s string) (time.Duration, error) {
	if s == "0" {
		return 0, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		return 0, fmt.Errorf("want a duration like 500ms, 5s or 2m, got %q", s)
	}
	return d, nil
}

// rng parses "5ms" or "2ms..20ms".
func (y ynode) rng() (Range, error) {
	s, err := y.str()
	if err != nil {
		return Range{}, err
	}
	lo, hi, ok := strings.Cut(s, "..")
	if !ok {
		hi = lo
	}
	a, err1 := parseDuration(strings.TrimSpace(lo))
	b, err2 := parseDuration(strings.TrimSpace(hi))
	if err1 != nil || err2 != nil || b < a || a < 0 {
		return Range{}, y.errf("want a duration or a range like 2ms..20ms, got %q", s)
	}
	return Range{a, b}, nil
}

// bandwidth parses "10Mbit", "1Gbit", "500kbit", "125000" (bytes/s) or 0.
func (y ynode) bandwidth() (int64, error) {
	s, err := y.str()
	if err != nil {
		return 0, err
	}
	v, err := parseBandwidth(s)
	if err != nil {
		return 0, y.errf("%v", err)
	}
	return v, nil
}

func parseBandwidth(s string) (int64, error) {
	units := []struct {
		suffix string
		bits   float64
	}{{"Gbit", 1e9}, {"Mbit", 1e6}, {"kbit", 1e3}, {"bit", 1}}
	for _, u := range units {
		if num, ok := strings.CutSuffix(s, u.suffix); ok {
			v, err := strconv.ParseFloat(strings.TrimSpace(num), 64)
			if err != nil || v < 0 {
				break
			}
			return int64(v * u.bits / 8), nil
		}
	}
	v, err := strconv.ParseInt(s, 10, 64)
	if err != nil || v < 0 {
		return 0, fmt.Errorf("want a bandwidth like 10Mbit or bytes per second, got %q", s)
	}
	return v, nil
}

// durField is a duration field of a mapping and where its value goes.
type durField struct {
	key string
	dst *time.Duration
}

// setDurs parses those of fields that f has, in the order given, so
// that the first bad one is the one reported.
func setDurs(f map[string]ynode, fields ...durField) error {
	for _, d := range fields {
		if v, ok := f[d.key]; ok {
			x, err := v.dur()
			if err != nil {
				return err
			}
			*d.dst = x
		}
	}
	return nil
}

// intField is an integer field of a mapping and where its value goes.
type intField struct {
	key string
	dst *int
}

// setInts parses those of fields that f has, in the order given.
func setInts(f map[string]ynode, fields ...intField) error {
	for _, d := range fields {
		if v, ok := f[d.key]; ok {
			x, err := v.int()
			if err != nil {
				return err
			}
			*d.dst = x
		}
	}
	return nil
}
