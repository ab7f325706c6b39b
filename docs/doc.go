// Package docs holds the project's documents (protocol.md, design.md,
// architecture.md) and a test that keeps the code's citations of them
// true. It has no code.
package docs
