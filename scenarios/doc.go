// Package scenarios holds the simulator's scenario files (YAML, described
// in README.md), embedded so that `go test ./sim` and `invpn sim` can read
// them without touching the file system.
package scenarios

import "embed"

// Files holds every *.yaml scenario of this directory.
//
//go:embed *.yaml
var Files embed.FS
